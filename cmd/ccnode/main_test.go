package main

import (
	"testing"

	"github.com/prdcredit/ccnode/internal/testkit"
)

// TestMain removes the ccnode binary the CLI tests share.
func TestMain(m *testing.M) { testkit.Main(m) }
