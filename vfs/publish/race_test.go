//go:build race

package publish

// raceEnabled: the race detector slows byte crunching down some 15 times.
const raceEnabled = true
