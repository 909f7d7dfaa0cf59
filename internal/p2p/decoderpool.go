package p2p

import (
	"context"

	"github.com/org/rustpatcher-go/internal/pack"
)

// maxDecoders bounds the packed pieces a node decodes at once. Each
// decoder holds a dictionary buffer of up to wire.MaxDictLen bytes.
const maxDecoders = 2

// A decoderPool holds the decoders of packed pieces a node's downloads
// share: at most maxDecoders, made when first needed.
type decoderPool struct {
	slots chan *pack.Decoder // maxDecoders entries; nil until made
}

func newDecoderPool() *decoderPool {
	p := &decoderPool{slots: make(chan *pack.Decoder, maxDecoders)}
	for range maxDecoders {
		p.slots <- nil
	}
	return p
}

// get waits for a decoder, until ctx is done.
func (p *decoderPool) get(ctx context.Context) (*pack.Decoder, error) {
	select {
	case d := <-p.slots:
		if d == nil {
			var err error
			if d, err = pack.NewDecoder(); err != nil {
				p.slots <- nil
				return nil, err
			}
		}
		return d, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// put gives back a decoder that get returned.
func (p *decoderPool) put(d *pack.Decoder) { p.slots <- d }
