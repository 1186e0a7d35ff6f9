//! A live run's output as lines, for the live log stream (`GET /v1/worker/jobs/{job_id}/logs`).
//!
//! The run owns it (one per entry of the lifecycle's registry): the output reader that already
//! follows the container's log while the job writes feeds it, and any number of subscribers
//! read it through a `watch` channel, each from its own position, so that a late subscriber
//! gets everything from the start of the run. Each stream is capped at the run's output cap,
//! like the stored result, so its memory is bounded whatever the job prints: the text, plus 12
//! bytes per line. What is stored in the result does not come from here.

use std::sync::Arc;

use cynode_contracts::logs::OutputStream;
use cynode_contracts::worker::{RunJobResponse, Truncated};
use tokio::sync::watch;

/// The lines of a run so far.
#[derive(Debug, Default)]
pub struct Lines {
    /// Every complete line's text, one after the other, without newlines.
    text: String,
    /// Each line: its stream and where its text is in `text`.
    lines: Vec<(OutputStream, u32, u32)>,
    /// A line not yet ended by a newline, per stream (stdout, stderr).
    pending: [Vec<u8>; 2],
    /// Bytes taken per stream, newlines included; never more than the cap.
    used: [usize; 2],
    cap: usize,
    truncated: Truncated,
    /// Whether the run's output reader fed it (else the result's output is filled in at the end).
    fed: bool,
    /// No more lines will come.
    closed: bool,
}

impl Lines {
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Line `i`: its stream and text.
    pub fn line(&self, i: usize) -> (OutputStream, &str) {
        let (stream, start, end) = self.lines[i];
        (stream, &self.text[start as usize..end as usize])
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub fn truncated(&self) -> Truncated {
        self.truncated
    }

    fn push(&mut self, stream: OutputStream, chunk: &[u8]) {
        if self.closed {
            return;
        }
        let i = index(stream);
        let room = self.cap.saturating_sub(self.used[i]);
        if chunk.len() > room {
            self.set_truncated(stream);
        }
        let chunk = &chunk[..chunk.len().min(room)];
        self.used[i] += chunk.len();
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.pending[i]);
            line.extend_from_slice(&rest[..nl]);
            self.add_line(stream, &line);
            rest = &rest[nl + 1..];
        }
        self.pending[i].extend_from_slice(rest);
    }

    fn set_truncated(&mut self, stream: OutputStream) {
        match stream {
            OutputStream::Stdout => self.truncated.stdout = true,
            OutputStream::Stderr => self.truncated.stderr = true,
        }
    }

    fn add_line(&mut self, stream: OutputStream, bytes: &[u8]) {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let start = self.text.len();
        self.text.push_str(&String::from_utf8_lossy(bytes));
        let (Ok(start), Ok(end)) = (u32::try_from(start), u32::try_from(self.text.len())) else {
            // Beyond any cap a node allows; keep what fits.
            self.text.truncate(start);
            self.set_truncated(stream);
            return;
        };
        self.lines.push((stream, start, end));
    }

    /// Ends the partial lines; nothing more is taken.
    fn close(&mut self) {
        for stream in [OutputStream::Stdout, OutputStream::Stderr] {
            let pending = std::mem::take(&mut self.pending[index(stream)]);
            if !pending.is_empty() {
                self.add_line(stream, &pending);
            }
        }
        self.closed = true;
    }
}

fn index(stream: OutputStream) -> usize {
    match stream {
        OutputStream::Stdout => 0,
        OutputStream::Stderr => 1,
    }
}

/// The feeding side, held by the live run; subscribers get a receiver.
#[derive(Debug, Clone)]
pub struct LiveOutput(Arc<watch::Sender<Lines>>);

impl LiveOutput {
    /// Empty, each stream capped at `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self(Arc::new(watch::Sender::new(Lines {
            cap,
            ..Lines::default()
        })))
    }

    /// Output the run's reader just read.
    pub fn push(&self, stream: OutputStream, chunk: &[u8]) {
        self.0.send_modify(|lines| {
            lines.fed = true;
            lines.push(stream, chunk);
        });
    }

    /// The run has ended with `result` (or without one): partial lines are ended, and if the
    /// reader never fed anything (a run that had exited before this worker took it over, a
    /// command that could not start, a repeated delivery) the result's output stands in for it. Subscribers see the end.
    pub fn close(&self, result: Option<&RunJobResponse>) {
        self.0.send_modify(|lines| {
            if let Some(result) = result.filter(|_| !lines.fed) {
                lines.push(OutputStream::Stdout, result.stdout.as_bytes());
                lines.push(OutputStream::Stderr, result.stderr.as_bytes());
                lines.truncated = result.truncated;
            }
            lines.close();
        });
    }

    pub fn subscribe(&self) -> watch::Receiver<Lines> {
        self.0.subscribe()
    }
}

/// A finished job's stored output as lines (stdout's, then stderr's), as a live run would
/// have sent them.
pub fn stored_lines(result: &RunJobResponse) -> Vec<(OutputStream, String)> {
    let output = LiveOutput::new(usize::MAX);
    output.close(Some(result));
    let lines = output.subscribe();
    let lines = lines.borrow();
    (0..lines.len())
        .map(|i| {
            let (stream, text) = lines.line(i);
            (stream, text.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(output: &LiveOutput) -> Vec<(OutputStream, String)> {
        let rx = output.subscribe();
        let lines = rx.borrow();
        (0..lines.len())
            .map(|i| (lines.line(i).0, lines.line(i).1.to_owned()))
            .collect()
    }

    #[test]
    fn chunks_become_lines_per_stream() {
        let output = LiveOutput::new(1024);
        output.push(OutputStream::Stdout, b"fir");
        output.push(OutputStream::Stderr, b"oops\r\n");
        output.push(OutputStream::Stdout, b"st\nsec");
        assert_eq!(
            all(&output),
            [
                (OutputStream::Stderr, "oops".to_owned()),
                (OutputStream::Stdout, "first".to_owned())
            ]
        );
        output.close(None);
        assert_eq!(all(&output)[2], (OutputStream::Stdout, "sec".to_owned()));
        assert!(output.subscribe().borrow().is_closed());
    }

    #[test]
    fn each_stream_stops_at_the_cap() {
        let output = LiveOutput::new(6);
        output.push(OutputStream::Stdout, b"12345\n7890\n");
        output.push(OutputStream::Stderr, b"ab\n");
        output.close(None);
        let rx = output.subscribe();
        assert_eq!(
            rx.borrow().truncated(),
            Truncated {
                stdout: true,
                stderr: false
            }
        );
        assert_eq!(
            all(&output),
            [
                (OutputStream::Stdout, "12345".to_owned()),
                (OutputStream::Stderr, "ab".to_owned())
            ]
        );
    }
}
