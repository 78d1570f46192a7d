package vfs

// DirectReadsForTest is how many reads the C layer served without Go.
func DirectReadsForTest() uint64 { return directReads() }
