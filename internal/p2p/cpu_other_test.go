//go:build !unix

package p2p

import (
	"testing"
	"time"
)

// processCPU is not measured here: 0.
func processCPU(b *testing.B) time.Duration { return 0 }

// childCPU cannot be read here: -1.
func childCPU(pid int) time.Duration { return -1 }
