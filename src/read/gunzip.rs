//! Gunzip: every member of a gzip stream, in order (AWS may write several).
//!
//! Inflate is the largest single cost of reading an export (~15 % of a
//! conversion's CPU through zlib-rs). ISA-L's igzip inflates the same data
//! files in about half the time, so it is used when the build found it (see
//! `build.rs`: Debian's `libisal-dev`); otherwise flate2's `MultiGzDecoder`
//! (zlib-rs). Both check each member's CRC-32 and length and refuse a
//! stream that ends early or has bytes after its last member that are not
//! another member. No Rust crate binds the system's ISA-L: `isal-rs` builds
//! its own copy from source with autotools and nasm, so a small C shim
//! (`isal.c`) keeps the one struct whose layout changes between versions on
//! the C side.

use std::io::{self, BufRead, Read};

#[cfg(not(isal))]
pub use flate2::bufread::MultiGzDecoder as Gunzip;

#[cfg(isal)]
pub use self::isal::Gunzip;

#[cfg(isal)]
mod isal {
    use super::*;
    use std::ffi::c_int;

    #[repr(C)]
    struct State {
        _opaque: [u8; 0],
    }

    unsafe extern "C" {
        fn dynolake_isal_new() -> *mut State;
        fn dynolake_isal_reset(s: *mut State);
        fn dynolake_isal_free(s: *mut State);
        fn dynolake_isal_inflate(
            s: *mut State,
            input: *const u8,
            in_len: u32,
            in_used: *mut u32,
            out: *mut u8,
            out_len: u32,
            out_used: *mut u32,
            finished: *mut c_int,
        ) -> c_int;
    }

    /// A `MultiGzDecoder` over ISA-L: reads every gzip member of `R`.
    pub struct Gunzip<R> {
        inner: R,
        state: *mut State,
        /// Between members: the last one ended (or none started yet).
        between: bool,
        members: u64,
    }

    // The state is owned by this value alone and only touched through `&mut self`.
    unsafe impl<R: Send> Send for Gunzip<R> {}

    impl<R: BufRead> Gunzip<R> {
        pub fn new(inner: R) -> Gunzip<R> {
            let state = unsafe { dynolake_isal_new() };
            assert!(!state.is_null(), "out of memory for an inflate state");
            Gunzip { inner, state, between: true, members: 0 }
        }

        pub fn into_inner(self) -> R {
            let this = std::mem::ManuallyDrop::new(self);
            unsafe {
                dynolake_isal_free(this.state);
                std::ptr::read(&this.inner)
            }
        }
    }

    impl<R> Drop for Gunzip<R> {
        fn drop(&mut self) {
            unsafe { dynolake_isal_free(self.state) }
        }
    }

    fn invalid(code: c_int) -> io::Error {
        let what = match code {
            -1 => "invalid deflate block",
            -2 => "invalid deflate symbol",
            -3 => "invalid deflate distance",
            -4 => "invalid gzip header",
            -5 => "unsupported gzip compression method",
            -6 => "gzip checksum mismatch (CRC-32 or length)",
            _ => "corrupt gzip data",
        };
        io::Error::new(io::ErrorKind::InvalidData, format!("{what} (ISA-L code {code})"))
    }

    impl<R: BufRead> Read for Gunzip<R> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if out.is_empty() {
                return Ok(0);
            }
            let out_len = out.len().min(u32::MAX as usize) as u32;
            loop {
                let input = self.inner.fill_buf()?;
                if self.between {
                    if input.is_empty() {
                        return match self.members {
                            0 => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "empty gzip stream")),
                            _ => Ok(0),
                        };
                    }
                    unsafe { dynolake_isal_reset(self.state) };
                    self.between = false;
                }
                let at_end = input.is_empty();
                let in_len = input.len().min(u32::MAX as usize) as u32;
                let (mut used, mut given, mut finished) = (0u32, 0u32, 0 as c_int);
                let code = unsafe {
                    dynolake_isal_inflate(
                        self.state,
                        input.as_ptr(),
                        in_len,
                        &mut used,
                        out.as_mut_ptr(),
                        out_len,
                        &mut given,
                        &mut finished,
                    )
                };
                self.inner.consume(used as usize);
                if code < 0 {
                    return Err(invalid(code));
                }
                if finished != 0 {
                    self.between = true;
                    self.members += 1;
                }
                if given > 0 {
                    return Ok(given as usize);
                }
                if finished == 0 && at_end {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the gzip stream ends early"));
                }
                if finished == 0 && used == 0 {
                    // ISA-L takes what it is given (it buffers partial input itself); never spin.
                    return Err(io::Error::other("inflate made no progress"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(data: &[u8], level: u32) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::new(level));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Lines like an export's, with enough repetition and noise to give every
    /// kind of deflate block (stored at level 0, fixed and dynamic Huffman).
    fn lines(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        let mut out = Vec::new();
        for i in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            writeln!(out, r#"{{"Item":{{"pk":{{"S":"k{i}"}},"n":{{"N":"{}"}},"r":{{"S":"{:x}"}}}}}}"#, x % 1000, x)
                .unwrap();
        }
        out
    }

    /// Read all of `r` through `out`-sized reads.
    fn read_all(r: &mut impl Read, out: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; out];
        let mut got = Vec::new();
        loop {
            match r.read(&mut buf)? {
                0 => return Ok(got),
                n => got.extend_from_slice(&buf[..n]),
            }
        }
    }

    fn gunzip(data: &[u8], in_buf: usize, out: usize) -> io::Result<Vec<u8>> {
        read_all(&mut Gunzip::new(io::BufReader::with_capacity(in_buf, data)), out)
    }

    /// Every member, in order, whatever the input and output buffer sizes.
    #[test]
    fn reads_every_member_with_any_buffer_sizes() {
        let parts = [lines(20_000, 1), Vec::new(), lines(3, 2), lines(5_000, 3)];
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            stream.extend(gz(p, [6, 1, 0, 9][i]));
            want.extend_from_slice(p);
        }
        assert!(want.len() > 1 << 20);
        for (in_buf, out) in [(256 << 10, 256 << 10), (7, 1 << 20), (1 << 20, 3), (4096, 100_000)] {
            let got = gunzip(&stream, in_buf, out).unwrap();
            assert!(got == want, "input buffer {in_buf}, output {out}: {} bytes, want {}", got.len(), want.len());
        }
    }

    /// The input buffer holds what follows the stream untouched (MD5 of the compressed bytes reads on).
    #[test]
    fn into_inner_gives_back_the_reader() {
        let data = lines(100, 4);
        let stream = gz(&data, 6);
        let mut g = Gunzip::new(io::BufReader::with_capacity(64, &stream[..]));
        assert_eq!(read_all(&mut g, 1000).unwrap(), data);
        let mut rest = Vec::new();
        g.into_inner().read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }

    /// Damage is an error, never short or wrong output read as good.
    #[test]
    fn refuses_damaged_streams() {
        let data = lines(2_000, 5);
        let good = gz(&data, 6);
        let n = good.len();
        let mut crc = good.clone();
        crc[n - 6] ^= 1;
        let mut size = good.clone();
        size[n - 2] ^= 1;
        let mut body = good.clone();
        body[n / 2] ^= 0x55;
        let mut garbage = good.clone();
        garbage.extend_from_slice(b"not gzip");
        let mut zeros = good.clone();
        zeros.extend_from_slice(&[0; 16]);
        let cases: [(&str, &[u8]); 8] = [
            ("empty", b""),
            ("truncated", &good[..n - 3]),
            ("cut in the middle", &good[..n / 2]),
            ("CRC", &crc),
            ("length", &size),
            ("body", &body),
            ("trailing garbage", &garbage),
            ("trailing zeros", &zeros),
        ];
        for (what, bytes) in cases {
            let got = gunzip(bytes, 4096, 65536);
            assert!(got.as_ref().is_err_and(|_| true), "{what}: read {:?} bytes", got.map(|g| g.len()));
        }
        assert_eq!(gunzip(&good, 4096, 65536).unwrap(), data);
    }
}
