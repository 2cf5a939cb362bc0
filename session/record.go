package session

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// A record is Data as a remote store keeps it. Version 1 is
//
//	0x01 | uvarint len(user) | user | uvarint count |
//	count × (uvarint len(key) | key | uvarint len(value) | value)
//
// with the keys in ascending order. Decoding it takes a map, the values'
// bytes and nothing else, where JSON took a scan of every value and some
// allocations per value. Records are read in both this form and the JSON
// object ({"user": ..., "values": {...}}) earlier versions wrote, which
// starts with '{' and never with the version byte.
const recordV1 = 0x01

// errRecord is returned for records that are neither form.
var errRecord = errors.New("not a session record")

// appendRecord appends the version 1 record of d to b.
func appendRecord(b []byte, d Data) []byte {
	b = append(b, recordV1)
	b = binary.AppendUvarint(b, uint64(len(d.User)))
	b = append(b, d.User...)
	b = binary.AppendUvarint(b, uint64(len(d.Values)))
	for _, k := range slices.Sorted(maps.Keys(d.Values)) {
		v := d.Values[k]
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b
}

// recordLen returns the length of d's version 1 record.
func recordLen(d Data) int {
	n := 1 + binary.MaxVarintLen64*2 + len(d.User)
	for k, v := range d.Values {
		n += binary.MaxVarintLen64*2 + len(k) + len(v)
	}
	return n
}

// parseRecord decodes a record in either form. The user and the keys are
// substrings of rec; the values are copied, so that no caller can change
// rec through them.
func parseRecord(rec string) (Data, error) {
	if rec == "" {
		return Data{}, errRecord
	}
	switch rec[0] {
	case recordV1:
	case '{', ' ', '\t', '\r', '\n':
		var d Data
		if err := json.Unmarshal([]byte(rec), &d); err != nil {
			return Data{}, fmt.Errorf("%w: %w", errRecord, err)
		}
		return d, nil
	default:
		return Data{}, fmt.Errorf("%w: version %#x", errRecord, rec[0])
	}
	p := recordParser{rest: rec[1:]}
	d := Data{User: p.string()}
	n := p.uvarint()
	if n > uint64(len(p.rest)/2) { // each value takes two length bytes at least
		return Data{}, fmt.Errorf("%w: %d values in %d bytes", errRecord, n, len(p.rest))
	}
	if n > 0 {
		d.Values = make(map[string]json.RawMessage, n)
		buf := make([]byte, 0, len(p.rest))
		for range n {
			k, v := p.string(), p.string()
			if _, dup := d.Values[k]; dup && p.err == nil {
				p.err = fmt.Errorf("%w: key %q twice", errRecord, k)
			}
			start := len(buf)
			buf = append(buf, v...)
			d.Values[k] = buf[start:len(buf):len(buf)]
		}
	}
	if p.err == nil && p.rest != "" {
		p.err = fmt.Errorf("%w: %d bytes after the values", errRecord, len(p.rest))
	}
	if p.err != nil {
		return Data{}, p.err
	}
	return d, nil
}

// recordParser reads a version 1 record; after its first error it reads
// only empty strings and zeros, and keeps the error.
type recordParser struct {
	rest string
	err  error
}

func (p *recordParser) uvarint() uint64 {
	if p.err != nil {
		return 0
	}
	var x uint64
	for i := 0; i < binary.MaxVarintLen64 && i < len(p.rest); i++ {
		c := p.rest[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				break
			}
			p.rest = p.rest[i+1:]
			return x | uint64(c)<<(7*i)
		}
		x |= uint64(c&0x7f) << (7 * i)
	}
	p.err = fmt.Errorf("%w: bad length", errRecord)
	return 0
}

func (p *recordParser) string() string {
	n := p.uvarint()
	if p.err != nil {
		return ""
	}
	if n > uint64(len(p.rest)) {
		p.err = fmt.Errorf("%w: length %d beyond the %d bytes left", errRecord, n, len(p.rest))
		return ""
	}
	s := p.rest[:n]
	p.rest = p.rest[n:]
	return s
}
