package uploader

// Progress receives what a deploy is doing, for a progress bar or log
// lines. Its methods are called from several goroutines at once.
type Progress interface {
	// Step announces a publish step ("assets", "record", "pages",
	// "removes", "prune") and how many files and bytes it will write.
	Step(name string, files int, bytes int64)
	// Done reports one finished action of the current step.
	Done(a Action)
}

type noProgress struct{}

func (noProgress) Step(string, int, int64) {}
func (noProgress) Done(Action)             {}
