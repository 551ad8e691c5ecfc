package facts

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/sha512"
	"encoding/binary"
	"hash/crc32"
	"reflect"
	"strings"
	"testing"
)

// makeKeystore writes a keystore the way Elasticsearch's KeyStoreWrapper
// does for format 3-6 (a stand-in: no Elasticsearch is available offline).
// Names go in order; values are fixed test strings.
func makeKeystore(format int, password string, names ...string) []byte {
	var plain bytes.Buffer
	be := binary.BigEndian
	plain.Write(be.AppendUint32(nil, uint32(len(names))))
	writeUTF := func(s string) {
		plain.Write(be.AppendUint16(nil, uint16(len(s))))
		plain.WriteString(s)
	}
	for _, n := range names {
		writeUTF(n)
		if format == 3 {
			writeUTF("STRING")
		}
		v := "stand-in-secret-for-" + n
		plain.Write(be.AppendUint32(nil, uint32(len(v))))
		plain.WriteString(v)
	}
	salt := bytes.Repeat([]byte{7}, 64)
	iv := bytes.Repeat([]byte{9}, 12)
	iters := 10000
	if format >= 6 {
		iters = 210000
	}
	key, err := pbkdf2.Key(sha512.New, password, salt, iters, 16)
	if err != nil {
		panic(err)
	}
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCMWithNonceSize(block, len(iv))
	enc := gcm.Seal(nil, iv, plain.Bytes(), salt)
	var order binary.AppendByteOrder = binary.BigEndian
	if format >= 5 {
		order = binary.LittleEndian
	}
	var data []byte
	for _, b := range [][]byte{salt, iv, enc} {
		data = order.AppendUint32(data, uint32(len(b)))
		data = append(data, b...)
	}
	var out []byte
	out = be.AppendUint32(out, luceneCodecMagic)
	out = append(out, byte(len(keystoreCodec)))
	out = append(out, keystoreCodec...)
	out = be.AppendUint32(out, uint32(format))
	if password != "" {
		out = append(out, 1)
	} else {
		out = append(out, 0)
	}
	out = order.AppendUint32(out, uint32(len(data)))
	out = append(out, data...)
	out = be.AppendUint32(out, luceneFooterMagic)
	out = be.AppendUint32(out, 0)
	out = be.AppendUint64(out, uint64(crc32.ChecksumIEEE(out)))
	return out
}

func TestParseKeystoreFormats(t *testing.T) {
	names := []string{"keystore.seed", "discovery.ec2.access_key", "discovery.ec2.secret_key"}
	for _, format := range []int{3, 4, 5, 6} {
		ks, err := ParseKeystore(makeKeystore(format, "", names...))
		if err != nil {
			t.Errorf("format %d: %v", format, err)
			continue
		}
		if ks.FormatVersion != format || ks.HasPassword || !reflect.DeepEqual(ks.Entries, names) {
			t.Errorf("format %d: %+v", format, ks)
		}
	}
}

func TestParseKeystoreRefuses(t *testing.T) {
	good := makeKeystore(4, "", "keystore.seed")
	ks, err := ParseKeystore(makeKeystore(4, "s3cret", "keystore.seed"))
	if err != errKeystorePassword || !ks.HasPassword || ks.Entries != nil {
		t.Errorf("password-protected: %+v %v", ks, err)
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)-30] ^= 1
	// A flipped ciphertext bit with a recomputed checksum must fail the GCM tag.
	tampered := bytes.Clone(flipped[:len(flipped)-8])
	tampered = binary.BigEndian.AppendUint64(tampered, uint64(crc32.ChecksumIEEE(tampered)))
	v2 := bytes.Clone(good[:len(good)-8])
	v2[4+1+len(keystoreCodec)+3] = 2
	v2 = binary.BigEndian.AppendUint64(v2, uint64(crc32.ChecksumIEEE(v2)))
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"empty":     {nil, "too short"},
		"junk":      {[]byte(strings.Repeat("junk", 10)), "no Lucene footer"},
		"checksum":  {flipped, "checksum mismatch"},
		"tampered":  {tampered, "does not decrypt"},
		"format 2":  {v2, "format 2 is not one this tool reads"},
		"truncated": {good[:len(good)-17], "no Lucene footer"},
	} {
		if _, err := ParseKeystore(tc.data); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", name, err, tc.want)
		}
	}
}

func FuzzParseKeystore(f *testing.F) {
	f.Add(makeKeystore(4, "", "keystore.seed", "discovery.ec2.access_key"))
	f.Add(makeKeystore(5, "pw", "keystore.seed"))
	f.Add([]byte("\x3f\xd7\x6c\x17\x16elasticsearch.keystore\x00\x00\x00\x04\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ks, err := ParseKeystore(data)
		if err == nil && (ks.Entries == nil || ks.HasPassword) {
			t.Fatalf("success without entries: %+v", ks)
		}
		for _, e := range ks.Entries {
			if strings.Contains(e, "stand-in-secret") {
				t.Fatalf("a value leaked into the names: %q", e)
			}
		}
	})
}
