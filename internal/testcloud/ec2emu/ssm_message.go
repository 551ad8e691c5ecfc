package ec2emu

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The Session Manager data channel's binary ClientMessage, as the
// session-manager-plugin (src/message) serializes it: a 116-byte header
// (HeaderLength counts up to, not including, PayloadLength), then
// PayloadLength and the payload. Integers are big-endian; MessageType is
// space padded; the MessageId UUID is written least significant half first.
const (
	cmHLOffset          = 0
	cmTypeOffset        = 4
	cmTypeLength        = 32
	cmSchemaOffset      = 36
	cmCreatedOffset     = 40
	cmSeqOffset         = 48
	cmFlagsOffset       = 56
	cmMessageIDOffset   = 64
	cmDigestOffset      = 80
	cmPayloadTypeOffset = 112
	cmPayloadLenOffset  = 116
	cmPayloadOffset     = 120
	cmHeaderLength      = cmPayloadLenOffset
)

// Message types and payload types of the data channel.
const (
	msgInputStream   = "input_stream_data"
	msgOutputStream  = "output_stream_data"
	msgAcknowledge   = "acknowledge"
	msgChannelClosed = "channel_closed"

	payloadOutput            = 1
	payloadHandshakeRequest  = 5
	payloadHandshakeResponse = 6
	payloadHandshakeComplete = 7
	payloadFlag              = 10

	flagDisconnectToPort   = 1
	flagTerminateSession   = 2
	flagConnectToPortError = 3
)

// clientMessage is one decoded data channel message.
type clientMessage struct {
	MessageType    string
	SchemaVersion  uint32
	CreatedDate    uint64
	SequenceNumber int64
	Flags          uint64
	MessageID      [16]byte // UUID bytes in canonical order
	PayloadType    uint32
	Payload        []byte
}

func newMessageID() [16]byte {
	var id [16]byte
	_, _ = rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	return id
}

// uuidString formats id as the plugin's acknowledge content carries it.
func uuidString(id [16]byte) string {
	h := hex.EncodeToString(id[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func (m *clientMessage) marshal() []byte {
	out := make([]byte, cmPayloadOffset+len(m.Payload))
	binary.BigEndian.PutUint32(out[cmHLOffset:], cmHeaderLength)
	copy(out[cmTypeOffset:cmTypeOffset+cmTypeLength], bytes.Repeat([]byte{' '}, cmTypeLength))
	copy(out[cmTypeOffset:], m.MessageType)
	binary.BigEndian.PutUint32(out[cmSchemaOffset:], m.SchemaVersion)
	created := m.CreatedDate
	if created == 0 {
		created = uint64(time.Now().UnixMilli())
	}
	binary.BigEndian.PutUint64(out[cmCreatedOffset:], created)
	binary.BigEndian.PutUint64(out[cmSeqOffset:], uint64(m.SequenceNumber))
	binary.BigEndian.PutUint64(out[cmFlagsOffset:], m.Flags)
	copy(out[cmMessageIDOffset:], m.MessageID[8:16])
	copy(out[cmMessageIDOffset+8:], m.MessageID[0:8])
	sum := sha256.Sum256(m.Payload)
	copy(out[cmDigestOffset:], sum[:])
	binary.BigEndian.PutUint32(out[cmPayloadTypeOffset:], m.PayloadType)
	binary.BigEndian.PutUint32(out[cmPayloadLenOffset:], uint32(len(m.Payload)))
	copy(out[cmPayloadOffset:], m.Payload)
	return out
}

// unmarshalClientMessage decodes and validates raw (header, payload length
// and SHA-256 digest), the checks the plugin applies to what it receives.
func unmarshalClientMessage(raw []byte) (*clientMessage, error) {
	if len(raw) < cmPayloadOffset {
		return nil, fmt.Errorf("message of %d bytes is shorter than the %d-byte header", len(raw), cmPayloadOffset)
	}
	hl := binary.BigEndian.Uint32(raw[cmHLOffset:])
	if hl != cmHeaderLength {
		return nil, fmt.Errorf("header length %d, want %d", hl, cmHeaderLength)
	}
	m := &clientMessage{
		MessageType:    strings.TrimSpace(string(bytes.Trim(raw[cmTypeOffset:cmTypeOffset+cmTypeLength], "\x00"))),
		SchemaVersion:  binary.BigEndian.Uint32(raw[cmSchemaOffset:]),
		CreatedDate:    binary.BigEndian.Uint64(raw[cmCreatedOffset:]),
		SequenceNumber: int64(binary.BigEndian.Uint64(raw[cmSeqOffset:])),
		Flags:          binary.BigEndian.Uint64(raw[cmFlagsOffset:]),
		PayloadType:    binary.BigEndian.Uint32(raw[cmPayloadTypeOffset:]),
	}
	copy(m.MessageID[8:16], raw[cmMessageIDOffset:cmMessageIDOffset+8])
	copy(m.MessageID[0:8], raw[cmMessageIDOffset+8:cmMessageIDOffset+16])
	n := binary.BigEndian.Uint32(raw[cmPayloadLenOffset:])
	if int(n) != len(raw)-cmPayloadOffset {
		return nil, fmt.Errorf("payload length %d, but %d bytes follow the header", n, len(raw)-cmPayloadOffset)
	}
	m.Payload = raw[cmPayloadOffset:]
	if m.MessageType == "" {
		return nil, errors.New("message type is missing")
	}
	if m.CreatedDate == 0 {
		return nil, errors.New("created date is missing")
	}
	if n > 0 {
		sum := sha256.Sum256(m.Payload)
		if !bytes.Equal(sum[:], raw[cmDigestOffset:cmDigestOffset+32]) {
			return nil, errors.New("payload digest does not match the payload")
		}
	}
	return m, nil
}
