//! Bounded capture of a sandbox's stdout and stderr: memory stays at the cap whatever the job
//! prints, and the cut never splits a UTF-8 character.

use cynode_contracts::worker::truncate_utf8;

/// Keeps at most `cap + 1` bytes: one past the cap is enough to know that the stream was longer
/// and to find the character boundary at the cut.
#[derive(Debug)]
pub struct CappedStream {
    cap: usize,
    bytes: Vec<u8>,
}

impl CappedStream {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            bytes: Vec::new(),
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        let room = (self.cap + 1).saturating_sub(self.bytes.len());
        self.bytes
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    pub fn is_full(&self) -> bool {
        self.bytes.len() > self.cap
    }

    /// The text and whether it was cut.
    pub fn finish(self) -> (String, bool) {
        truncate_utf8(&self.bytes, self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_output_is_kept_whole() {
        let mut s = CappedStream::new(10);
        s.push(b"hello");
        s.push(b" you");
        assert!(!s.is_full());
        assert_eq!(s.finish(), ("hello you".to_owned(), false));
    }

    #[test]
    fn exactly_the_cap_is_not_truncated() {
        let mut s = CappedStream::new(4);
        s.push("€a".as_bytes());
        assert_eq!(s.finish(), ("€a".to_owned(), false));
    }

    #[test]
    fn a_cut_inside_a_character_backs_off_to_its_start() {
        let mut s = CappedStream::new(7);
        for _ in 0..1000 {
            s.push("€".as_bytes());
        }
        assert!(s.is_full());
        let (text, cut) = s.finish();
        assert!(cut);
        assert_eq!(text, "€€");
    }
}
