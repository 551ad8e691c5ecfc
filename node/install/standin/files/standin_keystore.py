# Stand-in, not Elasticsearch's KeyStoreWrapper: reads and writes
# elasticsearch.keystore in the real on-disk format, so what reads a real
# keystore (esnode facts, facts/parse_keystore.go) reads this one too.
# Format (KeyStoreWrapper, formats 3-6): a Lucene codec header
# ("elasticsearch.keystore", format), a password flag, the length-prefixed
# salt, IV and AES-128-GCM ciphertext (AAD: the salt; lengths big-endian before
# format 5, little-endian from 5), a Lucene footer with a CRC32. The key is
# PBKDF2-HMAC-SHA512 of the password (10,000 rounds, 210,000 from format 6).
# Plaintext (Java DataOutputStream): entry count, then per entry writeUTF(name),
# writeUTF(type) in format 3 only, int length and the value's bytes.
# Only the empty password is supported (the default a package install makes).
# AES-GCM comes from libcrypto through ctypes: python3's stdlib has no AES.
import ctypes
import ctypes.util
import hashlib
import os
import struct
import zlib

CODEC_MAGIC = 0x3FD76C17
FOOTER_MAGIC = CODEC_MAGIC ^ 0xFFFFFFFF
CODEC = b"elasticsearch.keystore"


def format_for(version):
    """The format the given Elasticsearch version writes."""
    major = int(version.split(".")[0])
    return 3 if major < 7 else 4 if major < 8 else 6


_lib = None


def _crypto():
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(ctypes.util.find_library("crypto") or "libcrypto.so.3")
        lib.EVP_CIPHER_CTX_new.restype = ctypes.c_void_p
        lib.EVP_CIPHER_CTX_free.argtypes = [ctypes.c_void_p]
        lib.EVP_aes_128_gcm.restype = ctypes.c_void_p
        for f in (lib.EVP_EncryptInit_ex, lib.EVP_DecryptInit_ex):
            f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
        for f in (lib.EVP_EncryptUpdate, lib.EVP_DecryptUpdate):
            f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int), ctypes.c_char_p, ctypes.c_int]
        for f in (lib.EVP_EncryptFinal_ex, lib.EVP_DecryptFinal_ex):
            f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
        lib.EVP_CIPHER_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
        _lib = lib
    return _lib


GCM_SET_IVLEN, GCM_GET_TAG, GCM_SET_TAG = 0x9, 0x10, 0x11


def _gcm(encrypt, key, iv, aad, data):
    lib = _crypto()
    ctx = lib.EVP_CIPHER_CTX_new()
    try:
        init, update, final = ((lib.EVP_EncryptInit_ex, lib.EVP_EncryptUpdate, lib.EVP_EncryptFinal_ex) if encrypt
                               else (lib.EVP_DecryptInit_ex, lib.EVP_DecryptUpdate, lib.EVP_DecryptFinal_ex))
        tag = b""
        if not encrypt:
            data, tag = data[:-16], data[-16:]
        n = ctypes.c_int()
        ok = (init(ctx, lib.EVP_aes_128_gcm(), None, None, None) == 1
              and lib.EVP_CIPHER_CTX_ctrl(ctx, GCM_SET_IVLEN, len(iv), None) == 1
              and init(ctx, None, None, key, iv) == 1
              and update(ctx, None, ctypes.byref(n), aad, len(aad)) == 1)
        out = ctypes.create_string_buffer(len(data) + 16)
        ok = ok and update(ctx, out, ctypes.byref(n), data, len(data)) == 1
        size = n.value
        if ok and not encrypt:
            tagbuf = ctypes.create_string_buffer(tag, 16)
            ok = lib.EVP_CIPHER_CTX_ctrl(ctx, GCM_SET_TAG, 16, tagbuf) == 1
        ok = ok and final(ctx, ctypes.byref(out, size), ctypes.byref(n)) == 1
        if not ok:
            raise ValueError("keystore does not decrypt (corrupt, or not the empty password)" if not encrypt
                             else "libcrypto AES-GCM failed")
        size += n.value
        if encrypt:
            tagbuf = ctypes.create_string_buffer(16)
            if lib.EVP_CIPHER_CTX_ctrl(ctx, GCM_GET_TAG, 16, tagbuf) != 1:
                raise ValueError("libcrypto AES-GCM tag failed")
            return out.raw[:size] + tagbuf.raw
        return out.raw[:size]
    finally:
        lib.EVP_CIPHER_CTX_free(ctx)


def _key(salt, fmt):
    return hashlib.pbkdf2_hmac("sha512", b"", salt, 210000 if fmt >= 6 else 10000, 16)


def _utf(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def encode(entries, fmt):
    """entries: {name: bytes}, written in name order."""
    plain = struct.pack(">I", len(entries))
    for name in sorted(entries):
        plain += _utf(name)
        if fmt == 3:
            plain += _utf("STRING")
        plain += struct.pack(">I", len(entries[name])) + entries[name]
    salt, iv = os.urandom(64), os.urandom(12)
    enc = _gcm(True, _key(salt, fmt), iv, salt, plain)
    o = "<I" if fmt >= 5 else ">I"
    data = b"".join(struct.pack(o, len(b)) + b for b in (salt, iv, enc))
    out = struct.pack(">I", CODEC_MAGIC) + bytes([len(CODEC)]) + CODEC + struct.pack(">I", fmt) + b"\0"
    out += struct.pack(o, len(data)) + data + struct.pack(">II", FOOTER_MAGIC, 0)
    return out + struct.pack(">Q", zlib.crc32(out))


class _Reader:
    def __init__(self, b, little=False):
        self.b, self.off, self.o = b, 0, "<" if little else ">"

    def take(self, n):
        if n < 0 or self.off + n > len(self.b):
            raise ValueError("keystore is truncated or corrupt")
        v = self.b[self.off:self.off + n]
        self.off += n
        return v

    def u32(self, order=None):
        return struct.unpack((order or self.o) + "I", self.take(4))[0]

    def chunk(self):
        return self.take(self.u32())


def decode(data):
    """Returns (format, {name: bytes}); raises ValueError on anything else."""
    if len(data) < 16 or struct.unpack(">II", data[-16:-8]) != (FOOTER_MAGIC, 0):
        raise ValueError("keystore has no Lucene footer")
    if struct.unpack(">Q", data[-8:])[0] != zlib.crc32(data[:-8]):
        raise ValueError("keystore checksum mismatch")
    r = _Reader(data[:-16])
    if r.u32() != CODEC_MAGIC or r.take(r.take(1)[0]) != CODEC:
        raise ValueError("not an elasticsearch.keystore")
    fmt = r.u32()
    if not 3 <= fmt <= 6:
        raise ValueError("keystore format %d is not 3-6" % fmt)
    if r.take(1) != b"\0":
        raise ValueError("password-protected keystores are not supported by the stand-in")
    r.o = "<" if fmt >= 5 else ">"
    d = _Reader(r.chunk(), fmt >= 5)
    salt, iv, enc = d.chunk(), d.chunk(), d.chunk()
    p = _Reader(_gcm(False, _key(salt, fmt), iv, salt, enc))
    entries = {}
    for _ in range(p.u32()):
        name = p.take(struct.unpack(">H", p.take(2))[0]).decode()
        if fmt == 3:
            p.take(struct.unpack(">H", p.take(2))[0])
        entries[name] = p.chunk()
    return fmt, entries
