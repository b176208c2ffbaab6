package ingest

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/schollz/progressbar/v3"
)

// BarProgress draws a progress bar (bytes of the current input, records/s,
// rejections) for a terminal.
type BarProgress struct {
	w   io.Writer
	bar *progressbar.ProgressBar
}

// NewBarProgress draws on w, which should be a terminal.
func NewBarProgress(w io.Writer) *BarProgress { return &BarProgress{w: w} }

// Start begins a bar for one input.
func (b *BarProgress) Start(input string, total int64) {
	if b.bar != nil {
		b.bar.Finish()
	}
	b.bar = progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(b.w),
		progressbar.OptionSetDescription(input),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

// Update moves the bar.
func (b *BarProgress) Update(s Summary, inputBytes int64) {
	if b.bar == nil {
		return
	}
	b.bar.Describe(fmt.Sprintf("%d records  %.0f/s  %d rejected", s.Records(), s.Rate(), s.Rejected))
	_ = b.bar.Set64(inputBytes)
}

// Finish clears the bar.
func (b *BarProgress) Finish(Summary) {
	if b.bar != nil {
		b.bar.Finish()
		fmt.Fprintln(b.w)
	}
}

// LogProgress writes a log line at most every Interval, for when the
// output is not a terminal.
type LogProgress struct {
	log      *slog.Logger
	interval time.Duration
	last     time.Time
	input    string
	total    int64
}

// NewLogProgress logs to log every interval (default 5s).
func NewLogProgress(log *slog.Logger, interval time.Duration) *LogProgress {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	return &LogProgress{log: log, interval: interval, last: time.Now()}
}

// Start notes the input.
func (l *LogProgress) Start(input string, total int64) {
	l.input, l.total = input, total
	l.log.Info("importing", "input", input, "bytes", total)
}

// Update logs if the interval has passed.
func (l *LogProgress) Update(s Summary, inputBytes int64) {
	if time.Since(l.last) < l.interval {
		return
	}
	l.last = time.Now()
	l.log.Info("import progress", "input", l.input, "read_bytes", inputBytes, "total_bytes", l.total,
		"records", s.Records(), "rate", int64(s.Rate()), "rejected", s.Rejected)
}

// Finish does nothing: the command prints the summary.
func (l *LogProgress) Finish(Summary) {}
