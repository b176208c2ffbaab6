package p2p

// presizedStack is the stack, in bytes, that growStack leaves a goroutine:
// enough for an answer's deepest path (libp2p's stream handling, the
// answering pipeline, credit's encoders and the ed25519 arithmetic).
const presizedStack = 16 << 10

// growStack grows the calling goroutine's stack to presizedStack bytes
// while the goroutine is still shallow. libp2p runs every stream's handler
// on a new goroutine, which starts with a small stack and grew it twice or
// three times per answer in the middle of the pipeline, each time copying
// the stack and adjusting every frame on it: about 6% of an answering
// node's CPU in the profiles (runtime.copystack under credit's encoders).
// Growing it once at the top copies only a few frames.
func growStack() { _ = stackFrame(0) }

// stackFrame has a frame larger than half of presizedStack, so calling it
// grows the stack to presizedStack; the index keeps the compiler from
// dropping the array.
//
//go:noinline
func stackFrame(i int) byte {
	var b [presizedStack/2 + 1024]byte
	return b[i]
}
