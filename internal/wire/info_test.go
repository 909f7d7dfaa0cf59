package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/org/rustpatcher-go/region"
)

func TestInfoAnswer(t *testing.T) {
	in := testRegion(t, 3<<20+5)
	reg, _ := in.Marshal()
	id := [IDLen]byte{7, 7}
	var buf bytes.Buffer
	for _, size := range []int64{in.ContentLen(), in.ContentLen() + region.MaxTail(in.ContentLen())} {
		buf.Reset()
		WriteInfo(&buf, reg, size, id)
		if buf.Len() != InfoAnswerLen {
			t.Fatalf("info answer is %d bytes, want %d", buf.Len(), InfoAnswerLen)
		}
		o, err := ReadInfo(&buf)
		if err != nil || o.Region != reg || o.Info != in || o.FileID != id || o.Layout.Size != size {
			t.Fatalf("ReadInfo = %+v, %v", o, err)
		}
	}
	for _, size := range []int64{in.ContentLen() - 1, in.ContentLen() + region.MaxTail(in.ContentLen()) + 1, -1} {
		buf.Reset()
		WriteInfo(&buf, reg, size, id)
		if _, err := ReadInfo(&buf); !errors.Is(err, ErrMalformed) {
			t.Errorf("file length %d: got %v, want ErrMalformed", size, err)
		}
	}
	buf.Reset()
	WriteInfo(&buf, [region.Size]byte{}, 10, id)
	if _, err := ReadInfo(&buf); !errors.Is(err, ErrMalformed) {
		t.Errorf("zero region: got %v, want ErrMalformed", err)
	}
	unsigned, _ := region.Info{}.Marshal()
	buf.Reset()
	WriteInfo(&buf, unsigned, 1000, id)
	if _, err := ReadInfo(&buf); !errors.Is(err, ErrMalformed) {
		t.Errorf("unsigned region: got %v, want ErrMalformed", err)
	}
	buf.Reset()
	WriteInfo(&buf, reg, in.ContentLen(), id)
	if _, err := ReadInfo(bytes.NewReader(buf.Bytes()[:100])); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated: got %v, want ErrMalformed", err)
	}
}

func FuzzReadInfo(f *testing.F) {
	in := testRegion(f, 5<<20)
	reg, _ := in.Marshal()
	var buf bytes.Buffer
	WriteInfo(&buf, reg, in.ContentLen()+100, [IDLen]byte{1})
	f.Add(buf.Bytes())
	buf.Reset()
	WriteInfoExt(&buf, reg, in.ContentLen(), [IDLen]byte{1}, InfoExt{Packed: true, Bases: [][IDLen]byte{{2}, {3}}})
	f.Add(buf.Bytes())
	buf.Reset()
	WriteError(&buf, StatusBusy, "busy")
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		cr := &countingReader{r: bytes.NewReader(b)}
		o, err := ReadInfo(cr)
		if cr.n > max(InfoAnswerLen+MaxInfoExtLen, MaxErrorLen) {
			t.Fatalf("read %d bytes", cr.n)
		}
		if err != nil {
			return
		}
		l := o.Layout
		if l.Content != o.Info.ContentLen() || l.Size < l.Content || l.Size-l.Content > region.MaxTail(l.Content) || l.Content > MaxContentLen {
			t.Fatalf("accepted layout %+v for content %d", l, o.Info.ContentLen())
		}
		if len(o.Ext.Bases) > MaxDeltaBases {
			t.Fatalf("%d delta bases", len(o.Ext.Bases))
		}
	})
}
