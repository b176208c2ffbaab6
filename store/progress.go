package store

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultProgressEvery is how often a long phase of a load logs its
// progress when BulkOptions.ProgressEvery is zero.
const DefaultProgressEvery = 5 * time.Second

// phaseMeter logs a phase of a load ("merge", "write") at a steady
// interval from its own goroutine, so a line comes even while Badger
// flushes or syncs and the phase's loop adds nothing. Loops add bytes
// with one atomic add.
type phaseMeter struct {
	done  atomic.Int64
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
	start time.Time
}

// startPhase starts logging phase at Info every interval (none when
// negative); total is the bytes the phase will go through (0: unknown).
func startPhase(log *slog.Logger, phase string, total int64, every time.Duration) *phaseMeter {
	m := &phaseMeter{stop: make(chan struct{}), start: time.Now()}
	if every == 0 {
		every = DefaultProgressEvery
	}
	if every < 0 || log == nil {
		return m
	}
	log.Info("import phase started", "phase", phase, "bytes", total)
	m.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				done := m.done.Load()
				args := []any{"phase", phase, "done_bytes", done, "elapsed", time.Since(m.start).Round(time.Second)}
				if total > 0 {
					args = append(args, "total_bytes", total, "percent", min(100, done*100/total))
				}
				log.Info("import progress", args...)
			}
		}
	})
	return m
}

func (m *phaseMeter) add(n int) {
	if m != nil {
		m.done.Add(int64(n))
	}
}

// end stops the logging; safe twice and on nil.
func (m *phaseMeter) end() {
	if m == nil {
		return
	}
	m.once.Do(func() { close(m.stop); m.wg.Wait() })
}
