//! SPDY/3.1 framing as moby/spdystream speaks it (its `spdy/{types,read,write}.go`, from
//! golang.org/x/net's spdy): the control frames SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS,
//! PING, GOAWAY, HEADERS and WINDOW_UPDATE, and DATA frames. Header blocks are zlib streams
//! primed with the SPDY/3 dictionary, one stream per direction per connection, each block
//! sync-flushed: an [`Encoder`] and a [`Decoder`] therefore live as long as a connection.
//!
//! Pure encode/decode, no I/O. Flow control is spdystream's: none. It neither sends
//! WINDOW_UPDATE nor waits for one (frames of type WINDOW_UPDATE and SETTINGS reach its
//! "unhandled frame" branch), so the kubelet parses them and ignores them, and never waits
//! on the 64 KiB initial window either.

use std::sync::OnceLock;

use bytes::{Buf, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The version in every control frame.
pub const VERSION: u16 = 3;
/// FLAG_FIN on control frames (SYN_STREAM, SYN_REPLY, HEADERS) and on DATA frames.
pub const FLAG_FIN: u8 = 0x01;
/// FLAG_UNIDIRECTIONAL on SYN_STREAM.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// The largest payload of one frame (24-bit length).
pub const MAX_LENGTH: usize = (1 << 24) - 1;
/// The largest decompressed header block accepted (a compressed block can expand a lot).
pub const MAX_HEADER_BLOCK: usize = 1 << 20;
/// SPDY/3.1's initial flow-control window (unused, see the module doc).
pub const INITIAL_WINDOW: u32 = 64 * 1024;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes.
pub mod rst {
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const INVALID_STREAM: u32 = 2;
    pub const REFUSED_STREAM: u32 = 3;
    pub const CANCEL: u32 = 5;
    pub const INTERNAL_ERROR: u32 = 6;
}

/// Malformed input or a compression failure; the connection cannot go on after one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpdyError {
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    #[error("invalid {kind} frame: {why}")]
    Invalid {
        kind: &'static str,
        why: &'static str,
    },
    #[error("stream id zero is disallowed")]
    ZeroStreamId,
    #[error("header was not lowercased: {0:?}")]
    UnlowercasedHeader(String),
    #[error("multiple headers with same name: {0:?}")]
    DuplicateHeader(String),
    #[error("header block: {0}")]
    HeaderBlock(&'static str),
    #[error("header compression: {0}")]
    Compression(String),
}

/// A header block: lower-case names with their values in order. A name with several values
/// is sent once with its values joined by NUL, as spdystream does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.0.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// One frame, unpacked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        /// 3 bits, 0 the highest.
        priority: u8,
        slot: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        flags: u8,
        /// (flags, id, value).
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: bytes::Bytes,
    },
    /// A control frame of a type this codec does not know (skipped, as SPDY/3 asks).
    Unknown {
        kind: u16,
    },
}

/// The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1): 4-byte lengths
/// and words, then a run of common values.
pub fn dictionary() -> &'static [u8] {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| {
        const WORDS: &[&str] = &[
            "options",
            "head",
            "post",
            "put",
            "delete",
            "trace",
            "accept",
            "accept-charset",
            "accept-encoding",
            "accept-language",
            "accept-ranges",
            "age",
            "allow",
            "authorization",
            "cache-control",
            "connection",
            "content-base",
            "content-encoding",
            "content-language",
            "content-length",
            "content-location",
            "content-md5",
            "content-range",
            "content-type",
            "date",
            "etag",
            "expect",
            "expires",
            "from",
            "host",
            "if-match",
            "if-modified-since",
            "if-none-match",
            "if-range",
            "if-unmodified-since",
            "last-modified",
            "location",
            "max-forwards",
            "pragma",
            "proxy-authenticate",
            "proxy-authorization",
            "range",
            "referer",
            "retry-after",
            "server",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "user-agent",
            "vary",
            "via",
            "warning",
            "www-authenticate",
            "method",
            "get",
            "status",
            "200 OK",
            "version",
            "HTTP/1.1",
            "url",
            "public",
            "set-cookie",
            "keep-alive",
            "origin",
        ];
        const TAIL: &str = concat!(
            "100101201202205206300302303304305306307402405406407408409410411412413414415416417",
            "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently",
            "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error",
            "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct",
            " Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,",
            "image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
            "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8",
            "charset=iso-8859-1,utf-,*,enq=0.",
        );
        let mut d = Vec::with_capacity(1423);
        for w in WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(TAIL.as_bytes());
        d
    })
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Reads frames from a connection's incoming bytes.
pub struct Decoder {
    inflate: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Decoder {
            inflate: Decompress::new(true),
        }
    }

    /// The next whole frame at the start of `buf` (consumed), `None` while incomplete.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let first = be32(&buf[0..4]);
        let second = be32(&buf[4..8]);
        let flags = (second >> 24) as u8;
        let length = (second & 0x00ff_ffff) as usize;
        if buf.len() < 8 + length {
            return Ok(None);
        }
        buf.advance(8);
        let payload = buf.split_to(length);
        if first & 0x8000_0000 == 0 {
            let stream_id = first & 0x7fff_ffff;
            if stream_id == 0 {
                return Err(SpdyError::ZeroStreamId);
            }
            return Ok(Some(Frame::Data {
                stream_id,
                flags,
                data: payload.freeze(),
            }));
        }
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        let kind = (first & 0xffff) as u16;
        self.control(kind, flags, &payload).map(Some)
    }

    fn control(&mut self, kind: u16, flags: u8, p: &[u8]) -> Result<Frame, SpdyError> {
        let need = |name: &'static str, n: usize, exact: bool| {
            if p.len() < n || (exact && p.len() != n) {
                Err(SpdyError::Invalid {
                    kind: name,
                    why: "wrong length",
                })
            } else {
                Ok(())
            }
        };
        let stream = |id: u32| {
            let id = id & 0x7fff_ffff;
            if id == 0 {
                Err(SpdyError::ZeroStreamId)
            } else {
                Ok(id)
            }
        };
        Ok(match kind {
            TYPE_SYN_STREAM => {
                need("SYN_STREAM", 10, false)?;
                let stream_id = stream(be32(&p[0..4]))?;
                let headers = self.header_block(&p[10..])?;
                Frame::SynStream {
                    stream_id,
                    associated_to: be32(&p[4..8]) & 0x7fff_ffff,
                    priority: p[8] >> 5,
                    slot: p[9],
                    flags,
                    headers,
                }
            }
            TYPE_SYN_REPLY => {
                need("SYN_REPLY", 4, false)?;
                let stream_id = stream(be32(&p[0..4]))?;
                let headers = self.header_block(&p[4..])?;
                Frame::SynReply {
                    stream_id,
                    flags,
                    headers,
                }
            }
            TYPE_HEADERS => {
                need("HEADERS", 4, false)?;
                let stream_id = stream(be32(&p[0..4]))?;
                let headers = self.header_block(&p[4..])?;
                Frame::Headers {
                    stream_id,
                    flags,
                    headers,
                }
            }
            TYPE_RST_STREAM => {
                need("RST_STREAM", 8, true)?;
                let stream_id = stream(be32(&p[0..4]))?;
                let status = be32(&p[4..8]);
                if status == 0 {
                    return Err(SpdyError::Invalid {
                        kind: "RST_STREAM",
                        why: "status zero",
                    });
                }
                Frame::RstStream { stream_id, status }
            }
            TYPE_SETTINGS => {
                need("SETTINGS", 4, false)?;
                let n = be32(&p[0..4]) as usize;
                if n.checked_mul(8).and_then(|x| x.checked_add(4)) != Some(p.len()) {
                    return Err(SpdyError::Invalid {
                        kind: "SETTINGS",
                        why: "entry count does not match the length",
                    });
                }
                let entries = p[4..]
                    .chunks_exact(8)
                    .map(|e| {
                        let id = be32(&e[0..4]);
                        ((id >> 24) as u8, id & 0x00ff_ffff, be32(&e[4..8]))
                    })
                    .collect();
                Frame::Settings { flags, entries }
            }
            TYPE_PING => {
                need("PING", 4, true)?;
                let id = be32(&p[0..4]);
                if id == 0 || flags != 0 {
                    return Err(SpdyError::Invalid {
                        kind: "PING",
                        why: "zero id or flags set",
                    });
                }
                Frame::Ping { id }
            }
            TYPE_GOAWAY => {
                need("GOAWAY", 8, true)?;
                Frame::GoAway {
                    last_good_stream_id: be32(&p[0..4]) & 0x7fff_ffff,
                    status: be32(&p[4..8]),
                }
            }
            TYPE_WINDOW_UPDATE => {
                need("WINDOW_UPDATE", 8, true)?;
                Frame::WindowUpdate {
                    stream_id: be32(&p[0..4]) & 0x7fff_ffff,
                    delta: be32(&p[4..8]) & 0x7fff_ffff,
                }
            }
            kind => Frame::Unknown { kind },
        })
    }

    /// Inflates one sync-flushed block of the connection's zlib stream and parses it.
    fn header_block(&mut self, mut input: &[u8]) -> Result<Headers, SpdyError> {
        let mut out: Vec<u8> = Vec::with_capacity(1024);
        // Bounded: each round consumes input or produces output, and output is capped.
        for _ in 0..(MAX_HEADER_BLOCK / 1024 + input.len() + 16) {
            out.reserve(1024);
            let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
            let res = self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync);
            let consumed = (self.inflate.total_in() - in0) as usize;
            let produced = self.inflate.total_out() - out0;
            input = &input[consumed.min(input.len())..];
            match res {
                Ok(Status::StreamEnd) => break,
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(dictionary())
                        .map_err(|e| SpdyError::Compression(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(SpdyError::Compression(e.to_string())),
            }
            if out.len() > MAX_HEADER_BLOCK {
                return Err(SpdyError::HeaderBlock("too large"));
            }
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            if consumed == 0 && produced == 0 {
                if input.is_empty() {
                    break;
                }
                return Err(SpdyError::Compression("no progress".into()));
            }
        }
        parse_header_block(&out)
    }
}

/// The uncompressed header block: a count, then (length, name, length, value) each with
/// 32-bit lengths (SPDY/3).
pub fn parse_header_block(b: &[u8]) -> Result<Headers, SpdyError> {
    let mut r = b;
    let mut take = |n: usize| -> Result<&[u8], SpdyError> {
        if r.len() < n {
            return Err(SpdyError::HeaderBlock("truncated"));
        }
        let (h, t) = r.split_at(n);
        r = t;
        Ok(h)
    };
    let count = be32(take(4)?) as usize;
    let mut headers = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..count {
        let n = be32(take(4)?) as usize;
        let name = std::str::from_utf8(take(n)?)
            .map_err(|_| SpdyError::HeaderBlock("name is not UTF-8"))?
            .to_owned();
        let n = be32(take(4)?) as usize;
        let value = String::from_utf8_lossy(take(n)?).into_owned();
        if name.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(SpdyError::UnlowercasedHeader(name));
        }
        if !seen.insert(name.clone()) {
            return Err(SpdyError::DuplicateHeader(name));
        }
        for v in value.split('\0') {
            headers.push((name.clone(), v.to_owned()));
        }
    }
    Ok(Headers(headers))
}

/// The uncompressed form of `h` (names lower-cased, repeated names joined).
pub fn header_block(h: &Headers) -> Vec<u8> {
    let mut names: Vec<String> = Vec::new();
    let mut values: Vec<Vec<&str>> = Vec::new();
    for (n, v) in &h.0 {
        let n = n.to_ascii_lowercase();
        match names.iter().position(|x| *x == n) {
            Some(i) => values[i].push(v),
            None => {
                names.push(n);
                values.push(vec![v]);
            }
        }
    }
    let mut b = Vec::new();
    b.extend_from_slice(&(names.len() as u32).to_be_bytes());
    for (n, vs) in names.iter().zip(values) {
        let v = vs.join("\0");
        b.extend_from_slice(&(n.len() as u32).to_be_bytes());
        b.extend_from_slice(n.as_bytes());
        b.extend_from_slice(&(v.len() as u32).to_be_bytes());
        b.extend_from_slice(v.as_bytes());
    }
    b
}

/// Writes frames for one connection.
pub struct Encoder {
    deflate: Compress,
}

impl Encoder {
    pub fn new() -> Result<Self, SpdyError> {
        // Best compression with the dictionary, as spdystream's NewFramer.
        let mut deflate = Compress::new(Compression::best(), true);
        deflate
            .set_dictionary(dictionary())
            .map_err(|e| SpdyError::Compression(e.to_string()))?;
        Ok(Encoder { deflate })
    }

    fn compress(&mut self, h: &Headers) -> Result<Vec<u8>, SpdyError> {
        let raw = header_block(h);
        let mut input = &raw[..];
        let mut out = Vec::with_capacity(raw.len() / 2 + 64);
        for _ in 0..(raw.len() + 64) {
            out.reserve(256);
            let in0 = self.deflate.total_in();
            self.deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Compression(e.to_string()))?;
            let consumed = (self.deflate.total_in() - in0) as usize;
            input = &input[consumed.min(input.len())..];
            // Done when all input went in and the flush fit in the room left.
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
        Err(SpdyError::Compression("deflate made no progress".into()))
    }

    /// Appends `frame` to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) -> Result<(), SpdyError> {
        let control = |out: &mut Vec<u8>, kind: u16, flags: u8, len: usize| {
            out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
            out.extend_from_slice(&kind.to_be_bytes());
            out.extend_from_slice(&((u32::from(flags) << 24) | len as u32).to_be_bytes());
        };
        let too_long = |len: usize| {
            if len > MAX_LENGTH {
                Err(SpdyError::Invalid {
                    kind: "frame",
                    why: "payload longer than 2^24-1",
                })
            } else {
                Ok(())
            }
        };
        let nonzero = |id: u32| {
            if id == 0 || id > 0x7fff_ffff {
                Err(SpdyError::ZeroStreamId)
            } else {
                Ok(id)
            }
        };
        match frame {
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                slot,
                flags,
                headers,
            } => {
                let id = nonzero(*stream_id)?;
                let block = self.compress(headers)?;
                too_long(block.len() + 10)?;
                control(out, TYPE_SYN_STREAM, *flags, block.len() + 10);
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&(associated_to & 0x7fff_ffff).to_be_bytes());
                out.push((priority & 0x07) << 5);
                out.push(*slot);
                out.extend_from_slice(&block);
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            }
            | Frame::Headers {
                stream_id,
                flags,
                headers,
            } => {
                let kind = if matches!(frame, Frame::SynReply { .. }) {
                    TYPE_SYN_REPLY
                } else {
                    TYPE_HEADERS
                };
                let id = nonzero(*stream_id)?;
                let block = self.compress(headers)?;
                too_long(block.len() + 4)?;
                control(out, kind, *flags, block.len() + 4);
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&block);
            }
            Frame::RstStream { stream_id, status } => {
                let id = nonzero(*stream_id)?;
                control(out, TYPE_RST_STREAM, 0, 8);
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&status.to_be_bytes());
            }
            Frame::Settings { flags, entries } => {
                too_long(4 + entries.len() * 8)?;
                control(out, TYPE_SETTINGS, *flags, 4 + entries.len() * 8);
                out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
                for (f, id, v) in entries {
                    out.extend_from_slice(
                        &((u32::from(*f) << 24) | (id & 0x00ff_ffff)).to_be_bytes(),
                    );
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            Frame::Ping { id } => {
                control(out, TYPE_PING, 0, 4);
                out.extend_from_slice(&id.to_be_bytes());
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                control(out, TYPE_GOAWAY, 0, 8);
                out.extend_from_slice(&(last_good_stream_id & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(&status.to_be_bytes());
            }
            Frame::WindowUpdate { stream_id, delta } => {
                control(out, TYPE_WINDOW_UPDATE, 0, 8);
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(&(delta & 0x7fff_ffff).to_be_bytes());
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                let id = nonzero(*stream_id)?;
                too_long(data.len())?;
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(
                    &((u32::from(*flags) << 24) | data.len() as u32).to_be_bytes(),
                );
                out.extend_from_slice(data);
            }
            Frame::Unknown { .. } => {
                return Err(SpdyError::Invalid {
                    kind: "unknown",
                    why: "cannot be written",
                })
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> BytesMut {
        let b: Vec<u8> = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect();
        BytesMut::from(&b[..])
    }

    fn adler32(b: &[u8]) -> u32 {
        let (mut a, mut s) = (1u32, 0u32);
        for &x in b {
            a = (a + u32::from(x)) % 65521;
            s = (s + a) % 65521;
        }
        (s << 16) | a
    }

    #[test]
    fn dictionary_is_spdy3s() {
        // spdystream's headerDictionary: 1423 bytes; zlib streams name it by this Adler-32.
        assert_eq!(dictionary().len(), 1423);
        assert_eq!(adler32(dictionary()), 0xe3c6_a7c2);
    }

    #[test]
    fn a_foreign_header_stream_decodes() {
        // Two SYN_STREAMs of one connection as another zlib (CPython's, level 9, the
        // dictionary, sync flush per block) wrote them: the second block refers back into
        // the first, so it decodes only with the connection's shared inflate state.
        let mut buf = hex(concat!(
            "800300010000003d0000000100000000000078f9e3c6a7c202253a703a2b294a4dcc851625",
            "aca9a0808614cb45e01c6061606100a4398b20d198094ade8c0600000000ffff",
            "800300010000001800000003000000000000c2aa19540e2512d60b000000ffff",
        ));
        let mut d = Decoder::new();
        let f1 = d.decode(&mut buf).unwrap().unwrap();
        let f3 = d.decode(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty());
        let Frame::SynStream {
            stream_id, headers, ..
        } = f1
        else {
            panic!("{f1:?}")
        };
        assert_eq!(stream_id, 1);
        assert_eq!(
            headers,
            Headers::default()
                .with("streamtype", "error")
                .with("port", "8080")
                .with("requestid", "0")
        );
        let Frame::SynStream {
            stream_id, headers, ..
        } = f3
        else {
            panic!("{f3:?}")
        };
        assert_eq!(stream_id, 3);
        assert_eq!(headers.get("streamtype"), Some("data"));
        assert_eq!(headers.get("requestid"), Some("0"));
        // A fresh decoder lacks the first block's context.
        let mut second = hex("800300010000001800000003000000000000c2aa19540e2512d60b000000ffff");
        assert!(Decoder::new().decode(&mut second).is_err());
    }

    #[test]
    fn every_frame_round_trips_and_shares_the_compression_context() {
        let h = Headers::default()
            .with("streamtype", "data")
            .with("port", "8080")
            .with("requestid", "7")
            .with("x-multi", "a")
            .with("x-multi", "b");
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 3,
                slot: 0,
                flags: FLAG_FIN,
                headers: h.clone(),
            },
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: Headers::default(),
            },
            Frame::Headers {
                stream_id: 3,
                flags: FLAG_FIN,
                headers: h.clone(),
            },
            Frame::RstStream {
                stream_id: 5,
                status: rst::CANCEL,
            },
            Frame::Settings {
                flags: 0,
                entries: vec![(0, 7, INITIAL_WINDOW), (1, 4, 100)],
            },
            Frame::Ping { id: 1 },
            Frame::GoAway {
                last_good_stream_id: 3,
                status: 0,
            },
            Frame::WindowUpdate {
                stream_id: 1,
                delta: 1024,
            },
            Frame::Data {
                stream_id: 1,
                flags: FLAG_FIN,
                data: bytes::Bytes::from_static(b"hello"),
            },
            Frame::Data {
                stream_id: 3,
                flags: 0,
                data: bytes::Bytes::new(),
            },
        ];
        let mut enc = Encoder::new().unwrap();
        let mut wire = Vec::new();
        for f in &frames {
            enc.encode(f, &mut wire).unwrap();
        }
        // The same headers again compress to fewer bytes: one zlib stream per direction.
        let mut again = Vec::new();
        enc.encode(&frames[0], &mut again).unwrap();
        let mut first = Vec::new();
        Encoder::new()
            .unwrap()
            .encode(&frames[0], &mut first)
            .unwrap();
        assert!(
            again.len() < first.len(),
            "{} < {}",
            again.len(),
            first.len()
        );
        wire.extend_from_slice(&again);

        let mut d = Decoder::new();
        let mut got = Vec::new();
        // Fed a byte at a time: partial frames wait for more.
        let mut buf = BytesMut::new();
        for b in wire {
            buf.extend_from_slice(&[b]);
            while let Some(f) = d.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        let mut want = frames.clone();
        want.push(frames[0].clone());
        assert_eq!(got, want);
        // x-multi went out once with its values NUL-joined.
        assert_eq!(
            header_block(&h)
                .windows(3)
                .filter(|w| *w == b"a\0b")
                .count(),
            1
        );
    }

    #[test]
    fn mutated_input_never_panics() {
        // Valid frames of every kind, then many copies with bytes flipped, cut or inserted
        // (a deterministic xorshift): decoding ends in frames, `None` or an error.
        let mut enc = Encoder::new().unwrap();
        let mut wire = Vec::new();
        let h = Headers::default()
            .with("streamtype", "data")
            .with("port", "8080");
        for f in [
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                slot: 0,
                flags: 0,
                headers: h.clone(),
            },
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: h,
            },
            Frame::Settings {
                flags: 0,
                entries: vec![(0, 7, 1)],
            },
            Frame::Ping { id: 3 },
            Frame::Data {
                stream_id: 1,
                flags: 0,
                data: bytes::Bytes::from_static(b"payload"),
            },
        ] {
            enc.encode(&f, &mut wire).unwrap();
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..5000 {
            let mut m = wire.clone();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % m.len();
                match next() % 3 {
                    0 => m[i] = next() as u8,
                    1 => m.truncate(i.max(1)),
                    _ => m.insert(i, next() as u8),
                }
            }
            let mut buf = BytesMut::from(&m[..]);
            let mut d = Decoder::new();
            for _ in 0..64 {
                match d.decode(&mut buf) {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut d = Decoder::new();
        let cases: &[&str] = &[
            // SPDY/2.
            "8002000600000004000000ff",
            // PING with the wrong length, with id 0.
            "800300060000000300000001",
            "800300060000000400000000",
            // RST_STREAM with status 0, on stream 0.
            "80030003000000080000000100000000",
            "80030003000000080000000000000005",
            // SETTINGS claiming more entries than it has.
            "8003000400000004000000ff",
            // DATA on stream 0.
            "0000000000000000",
            // SYN_STREAM too short, and with a header block that is not zlib.
            "800300010000000400000001",
            "800300010000000e000000010000000000000102030405",
        ];
        for c in cases {
            let mut buf = hex(c);
            assert!(Decoder::new().decode(&mut buf).is_err(), "accepted {c}");
        }
        // Unknown control types are skipped, not fatal.
        let mut buf = hex("8003000a00000002abcd");
        assert_eq!(
            d.decode(&mut buf).unwrap(),
            Some(Frame::Unknown { kind: 10 })
        );
        // Header blocks: truncated, upper-case, duplicate names.
        assert!(parse_header_block(&[0, 0, 0, 1, 0, 0, 0, 9, b'a']).is_err());
        let block = |name: &str| {
            let mut b = vec![0, 0, 0, 2];
            for _ in 0..2 {
                b.extend_from_slice(&(name.len() as u32).to_be_bytes());
                b.extend_from_slice(name.as_bytes());
                b.extend_from_slice(&[0, 0, 0, 1, b'v']);
            }
            b
        };
        assert_eq!(
            parse_header_block(&block("Port")),
            Err(SpdyError::UnlowercasedHeader("Port".into()))
        );
        assert_eq!(
            parse_header_block(&block("port")),
            Err(SpdyError::DuplicateHeader("port".into()))
        );
        // A huge claimed count does not allocate ahead.
        assert!(parse_header_block(&[0xff, 0xff, 0xff, 0xff]).is_err());
        // Writing what cannot be on the wire.
        let mut out = Vec::new();
        let mut enc = Encoder::new().unwrap();
        assert!(enc
            .encode(
                &Frame::Data {
                    stream_id: 0,
                    flags: 0,
                    data: bytes::Bytes::new()
                },
                &mut out
            )
            .is_err());
    }
}
