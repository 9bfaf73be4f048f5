//! Deterministic multi-threaded gzip, for the layers freshen writes.

use std::io::{self, Write};

/// Multi-threaded gzip: the input is cut into fixed 1 MiB chunks, each
/// compressed as its own gzip member (no timestamp) on a pool of threads,
/// and the members are written in order. The output is deterministic and a
/// valid gzip stream (RFC 1952 allows several members; Go's, zlib's and
/// Python's readers all read them).
pub struct ParallelGz<W: Write> {
    out: W,
    buf: Vec<u8>,
    batch: Vec<Vec<u8>>,
}

const GZ_CHUNK: usize = 1 << 20;

impl<W: Write> ParallelGz<W> {
    pub fn new(out: W) -> Self {
        ParallelGz { out, buf: Vec::with_capacity(GZ_CHUNK), batch: Vec::new() }
    }

    fn threads() -> usize {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(8)
    }

    fn flush_batch(&mut self) -> io::Result<()> {
        let batch = std::mem::take(&mut self.batch);
        let members: Vec<io::Result<Vec<u8>>> = std::thread::scope(|s| {
            let handles: Vec<_> = batch
                .iter()
                .map(|chunk| {
                    s.spawn(move || {
                        let mut e = flate2::GzBuilder::new().write(Vec::with_capacity(chunk.len() / 2), flate2::Compression::default());
                        e.write_all(chunk)?;
                        e.finish()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(io::Error::other("compression thread panicked")))).collect()
        });
        for m in members {
            self.out.write_all(&m?)?;
        }
        Ok(())
    }

    /// Compresses what is left and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.buf.is_empty() || self.batch.is_empty() {
            let last = std::mem::take(&mut self.buf);
            self.batch.push(last);
        }
        self.flush_batch()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGz<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(GZ_CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == GZ_CHUNK {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(GZ_CHUNK));
            self.batch.push(full);
            if self.batch.len() >= Self::threads() {
                self.flush_batch()?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn parallel_gzip_round_trips_and_is_deterministic() {
        let data: Vec<u8> = (0..(3 * GZ_CHUNK + 12345)).map(|i| (i * 7 % 251) as u8).collect();
        let compress = || {
            let mut gz = ParallelGz::new(Vec::new());
            for piece in data.chunks(70_000) {
                gz.write_all(piece).unwrap();
            }
            gz.finish().unwrap()
        };
        let a = compress();
        assert_eq!(a, compress());
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&a[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
    }

}
