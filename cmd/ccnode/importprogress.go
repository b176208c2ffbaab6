package main

import (
	"time"

	"github.com/urfave/cli/v2"
)

// importProgressEvery is how often the phases after reading (the merge
// with the store, the write of the tables) log their progress: every
// --progress-interval, never with --quiet.
func importProgressEvery(c *cli.Context) time.Duration {
	if quiet(c) {
		return -1
	}
	return c.Duration("progress-interval")
}
