package facts

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"unicode/utf8"
)

// KeystoreContents is what an Elasticsearch keystore says about itself.
type KeystoreContents struct {
	FormatVersion int
	HasPassword   bool
	// Entries are the setting names; nil when the keystore has a password.
	Entries []string
}

// Keystore file format (Elasticsearch's KeyStoreWrapper, formats 3 to 6,
// Elasticsearch 6.3 and later): a Lucene codec header, a password flag, the
// length-prefixed salt, IV and AES-GCM ciphertext (big-endian before format
// 5, little-endian from 5), a Lucene footer with a CRC32. The key is
// PBKDF2-HMAC-SHA512 of the password (10,000 rounds, 210,000 from format 6),
// 128 bits; the salt is the additional data.
const (
	luceneCodecMagic  = 0x3fd76c17
	luceneFooterMagic = ^uint32(luceneCodecMagic)
	keystoreCodec     = "elasticsearch.keystore"
	keystoreMinFormat = 3
	keystoreMaxFormat = 6
	keystoreLEFormat  = 5
	maxKeystoreBytes  = 1 << 20
)

var errKeystorePassword = errors.New("the keystore is password-protected")

// ParseKeystore reads an elasticsearch.keystore and, when it has no password
// (the default), decrypts it to list its setting names. Values are read only
// to skip over them and are zeroed; they are never returned.
func ParseKeystore(data []byte) (KeystoreContents, error) {
	var ks KeystoreContents
	if len(data) > maxKeystoreBytes {
		return ks, fmt.Errorf("keystore is %d bytes, larger than any keystore Elasticsearch writes", len(data))
	}
	if len(data) < 16 {
		return ks, fmt.Errorf("keystore is %d bytes, too short for a Lucene header and footer", len(data))
	}
	body, footer := data[:len(data)-16], data[len(data)-16:]
	if binary.BigEndian.Uint32(footer) != luceneFooterMagic || binary.BigEndian.Uint32(footer[4:]) != 0 {
		return ks, fmt.Errorf("keystore has no Lucene footer: not an Elasticsearch 6.3+ keystore, or truncated")
	}
	if want := binary.BigEndian.Uint64(footer[8:]); uint64(crc32.ChecksumIEEE(data[:len(data)-8])) != want {
		return ks, fmt.Errorf("keystore checksum mismatch: the file is corrupt or was edited")
	}
	r := &ksReader{b: body}
	if r.be32() != luceneCodecMagic {
		return ks, fmt.Errorf("keystore has no Lucene codec header")
	}
	n := r.vint()
	if codec := string(r.bytes(n)); codec != keystoreCodec {
		return ks, fmt.Errorf("keystore codec is %q, want %q", truncate(codec, 40), keystoreCodec)
	}
	ks.FormatVersion = int(r.be32())
	if r.err != nil {
		return ks, fmt.Errorf("keystore header: %w", r.err)
	}
	if ks.FormatVersion < keystoreMinFormat || ks.FormatVersion > keystoreMaxFormat {
		return ks, fmt.Errorf("keystore format %d is not one this tool reads (%d-%d)", ks.FormatVersion, keystoreMinFormat, keystoreMaxFormat)
	}
	switch r.byte() {
	case 0:
	case 1:
		ks.HasPassword = true
	default:
		return ks, fmt.Errorf("keystore password flag is corrupt")
	}
	r.le = ks.FormatVersion >= keystoreLEFormat
	data2 := r.bytes(r.int32len())
	if r.err != nil || len(r.b) != r.off {
		return ks, fmt.Errorf("keystore body is malformed")
	}
	if ks.HasPassword {
		return ks, errKeystorePassword
	}
	d := &ksReader{b: data2, le: r.le}
	salt := d.bytes(d.int32len())
	iv := d.bytes(d.int32len())
	enc := d.bytes(d.int32len())
	if d.err != nil || d.off != len(d.b) || len(iv) == 0 || len(iv) > 64 {
		return ks, fmt.Errorf("keystore data is malformed")
	}
	iters := 10000
	if ks.FormatVersion >= 6 {
		iters = 210000
	}
	key, err := pbkdf2.Key(sha512.New, "", salt, iters, 16)
	if err != nil {
		return ks, fmt.Errorf("derive keystore key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return ks, fmt.Errorf("keystore cipher: %w", err)
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(iv))
	if err != nil {
		return ks, fmt.Errorf("keystore cipher: %w", err)
	}
	plain, err := gcm.Open(nil, iv, enc, salt)
	if err != nil {
		return ks, fmt.Errorf("keystore does not decrypt with the empty password (corrupt, or a password flag that lies): %w", err)
	}
	defer clear(plain)
	// Java DataOutputStream: big-endian, writeUTF strings.
	p := &ksReader{b: plain}
	count := int(p.be32())
	if count < 0 || count > len(plain) {
		return ks, fmt.Errorf("keystore entry count %d is corrupt", count)
	}
	ks.Entries = []string{}
	for i := 0; i < count && p.err == nil; i++ {
		name := p.utf()
		if ks.FormatVersion == 3 {
			p.utf() // entry type, format 3 only
		}
		p.bytes(int(int32(p.be32())))
		if p.err == nil {
			ks.Entries = append(ks.Entries, name)
		}
	}
	if p.err != nil || p.off != len(plain) {
		return ks, fmt.Errorf("keystore entries are corrupt")
	}
	return ks, nil
}

type ksReader struct {
	b   []byte
	off int
	le  bool
	err error
}

func (r *ksReader) need(n int) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || n > len(r.b)-r.off {
		r.err = fmt.Errorf("truncated at byte %d", r.off)
		return false
	}
	return true
}

func (r *ksReader) byte() byte {
	if !r.need(1) {
		return 0
	}
	r.off++
	return r.b[r.off-1]
}

func (r *ksReader) bytes(n int) []byte {
	if !r.need(n) {
		return nil
	}
	r.off += n
	return r.b[r.off-n : r.off]
}

func (r *ksReader) be32() uint32 {
	b := r.bytes(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

// int32len reads a length in the keystore's byte order.
func (r *ksReader) int32len() int {
	b := r.bytes(4)
	if b == nil {
		return -1
	}
	if r.le {
		return int(int32(binary.LittleEndian.Uint32(b)))
	}
	return int(int32(binary.BigEndian.Uint32(b)))
}

func (r *ksReader) vint() int {
	v := 0
	for shift := 0; shift < 32; shift += 7 {
		c := r.byte()
		v |= int(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	r.err = fmt.Errorf("bad vint")
	return -1
}

// utf reads Java's writeUTF: a 2-byte length and modified UTF-8 (setting
// names are ASCII; anything else is kept as is when valid UTF-8).
func (r *ksReader) utf() string {
	l := r.bytes(2)
	if l == nil {
		return ""
	}
	b := r.bytes(int(binary.BigEndian.Uint16(l)))
	if r.err == nil && !utf8.Valid(b) {
		return string(bytes.ToValidUTF8(b, []byte("?")))
	}
	return string(b)
}
