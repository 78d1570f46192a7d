package replica

// testHook, when a test sets it (before any replica is opened), is called
// with the name of each step the replica reaches while it applies, folds
// and installs: "apply:start", "fold:pages", "install:state", and so on.
// The crash test's child process reports the steps to its parent and
// pauses at one of them, so that a SIGKILL lands at a known point. Nil in
// production: each call is one nil check.
var testHook func(stage string)

func hook(stage string) {
	if testHook != nil {
		testHook(stage)
	}
}
