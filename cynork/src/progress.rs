//! Live task status. On a terminal a spinner line is redrawn in place; when piped, one plain
//! `key=value` line is printed per status change, which is what logs and scripts want.

use std::io::Write;
use std::time::{Duration, Instant};

use cynode_contracts::user::{Task, TaskStatus};

use crate::output::kv_line;

const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
/// How often the spinner advances between polls.
pub const TICK: Duration = Duration::from_millis(120);

#[derive(Debug)]
enum Mode {
    Silent,
    Lines,
    Spinner { frame: usize, started: Instant },
}

/// Renders status updates to `out`.
pub struct Progress {
    out: Box<dyn Write + Send>,
    mode: Mode,
    label: String,
    status: Option<TaskStatus>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("mode", &self.mode)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Progress {
    pub fn silent() -> Self {
        Self::new(Box::new(std::io::sink()), Mode::Silent)
    }

    /// One line per status change.
    pub fn lines(out: Box<dyn Write + Send>) -> Self {
        Self::new(out, Mode::Lines)
    }

    /// A spinner line redrawn in place; for terminals only.
    pub fn spinner(out: Box<dyn Write + Send>) -> Self {
        Self::new(
            out,
            Mode::Spinner {
                frame: 0,
                started: Instant::now(),
            },
        )
    }

    fn new(out: Box<dyn Write + Send>, mode: Mode) -> Self {
        Self {
            out,
            mode,
            label: String::new(),
            status: None,
        }
    }

    /// Takes the latest poll result.
    pub fn update(&mut self, task: &Task) {
        let changed = self.status != Some(task.status);
        self.status = Some(task.status);
        self.label = task
            .task_name
            .clone()
            .unwrap_or_else(|| task.id.to_string());
        match self.mode {
            Mode::Lines if changed => {
                let _ = writeln!(self.out, "{}", status_line(task));
                let _ = self.out.flush();
            }
            Mode::Spinner { .. } => self.tick(),
            _ => {}
        }
    }

    /// Advances the spinner (no-op otherwise).
    pub fn tick(&mut self) {
        let Mode::Spinner { frame, started } = &mut self.mode else {
            return;
        };
        let Some(status) = self.status else { return };
        *frame = (*frame + 1) % FRAMES.len();
        let elapsed = started.elapsed().as_secs();
        let _ = write!(
            self.out,
            "\r\x1b[2K{} task {} {}  {}s",
            FRAMES[*frame], self.label, status, elapsed
        );
        let _ = self.out.flush();
    }

    /// Removes the spinner line so the final output starts on a clean line.
    pub fn finish(&mut self) {
        if let Mode::Spinner { .. } = self.mode {
            let _ = write!(self.out, "\r\x1b[2K");
            let _ = self.out.flush();
        }
    }
}

/// `task_id=… status=…[ task_name=…]`.
pub fn status_line(task: &Task) -> String {
    let mut pairs = vec![
        ("task_id", task.id.to_string()),
        ("status", task.status.to_string()),
    ];
    if let Some(name) = &task.task_name {
        pairs.push(("task_name", name.clone()));
    }
    kv_line(&pairs)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Buf {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn task(status: TaskStatus) -> Task {
        let id = uuid::Uuid::nil();
        Task {
            id,
            task_id: id,
            status,
            task_name: Some("demo".into()),
            prompt: None,
            input_mode: Default::default(),
            summary: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            attachments: vec![],
            requirements: None,
            wait_reason: None,
            project_id: None,
            creator: None,
        }
    }

    #[test]
    fn lines_print_each_change_once_without_escapes() {
        let buf = Buf::default();
        let mut p = Progress::lines(Box::new(buf.clone()));
        for s in [
            TaskStatus::Queued,
            TaskStatus::Queued,
            TaskStatus::Running,
            TaskStatus::Completed,
        ] {
            p.update(&task(s));
            p.tick();
        }
        p.finish();
        let text = buf.text();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("status=running task_name=demo"), "{text}");
        assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
    }

    #[test]
    fn spinner_redraws_in_place_and_clears() {
        let buf = Buf::default();
        let mut p = Progress::spinner(Box::new(buf.clone()));
        p.update(&task(TaskStatus::Running));
        p.tick();
        p.finish();
        let text = buf.text();
        assert!(text.contains("\r\x1b[2K"), "{text:?}");
        assert!(text.contains("task demo running"), "{text:?}");
        assert!(!text.contains('\n'), "{text:?}");
        assert!(text.ends_with("\r\x1b[2K"), "{text:?}");
    }
}
