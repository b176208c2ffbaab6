//go:build !unix

package main

// storeLocked cannot tell here; the admin API's answer decides (--admin).
func storeLocked(string) bool { return false }
