//! Turning `task create` flags into a request. Every file is checked (exists, regular, not a
//! symlink, within its size limit, readable) before anything is sent, so a typo never creates a
//! half-specified task. Attached files are uploaded with the task in one `multipart/form-data`
//! request, so the gateway creates the task and its files together or not at all.

use std::path::Path;

use cynode_contracts::artifacts::TASK_PART;
use cynode_contracts::user::{CreateTaskRequest, InputMode, JobRequirements};

use crate::cli::{CreateArgs, InputModeArg};
use crate::client::Payload;
use crate::error::{CliError, Result};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
pub const MAX_TASK_FILE_BYTES: u64 = MIB;
pub const MAX_SCRIPT_BYTES: u64 = 256 * KIB;
pub const MAX_COMMANDS_FILE_BYTES: u64 = 64 * KIB;
pub const MAX_ATTACHMENT_BYTES: u64 = 10 * MIB;
pub const MAX_ATTACHMENTS: usize = 16;

/// Builds the `POST /v1/tasks` body, or says which flag is wrong (exit code 2).
pub fn create_request(args: &CreateArgs) -> Result<CreateTaskRequest> {
    let (prompt, mode) = task_text(args)?;
    if prompt.trim().is_empty() {
        return Err(CliError::Usage("the task text is empty".into()));
    }
    Ok(CreateTaskRequest {
        prompt,
        input_mode: Some(mode),
        task_name: args.name.clone(),
        // Resolved by the caller: a slug or the active project needs the gateway.
        project_id: None,
        attachments: Vec::new(),
        use_sba: None,
        use_inference: args.use_inference.then_some(true),
        use_mcp: args.use_mcp.then_some(true),
        requirements: Some(requirements(args)).filter(|r| !r.is_empty()),
    })
}

/// The `--require-*` / `--min-*` flags as the task's requirements; the gateway checks them.
fn requirements(args: &CreateArgs) -> JobRequirements {
    JobRequirements {
        labels: args.require_labels.clone(),
        model: args.require_model.clone(),
        min_memory_mb: args.min_memory_mb,
        min_cpu_cores: args.min_cpu_cores,
        gpu: args.require_gpu.then_some(true),
    }
}

fn task_text(args: &CreateArgs) -> Result<(String, InputMode)> {
    let inline_mode = match args.input_mode {
        None | Some(InputModeArg::Prompt) => InputMode::Prompt,
        Some(InputModeArg::Script) => InputMode::Script,
        Some(InputModeArg::Commands) => InputMode::Commands,
    };
    // --script and --command(s-file) fix the mode; a contradicting --input-mode is a mistake.
    let fixed = |mode: InputMode, flag: &str| -> Result<InputMode> {
        match args.input_mode {
            Some(given) if given_mode(given) != mode => Err(CliError::Usage(format!(
                "{flag} runs in input mode `{}`; it cannot be combined with --input-mode {}",
                mode.as_str(),
                given_mode(given).as_str()
            ))),
            _ => Ok(mode),
        }
    };
    if let Some(text) = args.text.as_ref().or(args.prompt.as_ref()) {
        return Ok((text.clone(), inline_mode));
    }
    if let Some(path) = &args.task_file {
        return Ok((
            read_text(path, "task file", MAX_TASK_FILE_BYTES)?,
            inline_mode,
        ));
    }
    if let Some(path) = &args.script {
        let mode = fixed(InputMode::Script, "--script")?;
        return Ok((read_text(path, "script", MAX_SCRIPT_BYTES)?, mode));
    }
    if !args.command.is_empty() {
        let mode = fixed(InputMode::Commands, "--command")?;
        return Ok((join_commands(args.command.iter().map(String::as_str)), mode));
    }
    if let Some(path) = &args.commands_file {
        let mode = fixed(InputMode::Commands, "--commands-file")?;
        let text = read_text(path, "commands file", MAX_COMMANDS_FILE_BYTES)?;
        return Ok((join_commands(text.lines()), mode));
    }
    Err(CliError::Usage(
        "give the task as TEXT, --prompt, --task-file, --script, --command or --commands-file"
            .into(),
    ))
}

fn given_mode(arg: InputModeArg) -> InputMode {
    match arg {
        InputModeArg::Prompt => InputMode::Prompt,
        InputModeArg::Script => InputMode::Script,
        InputModeArg::Commands => InputMode::Commands,
    }
}

/// Commands in order, blank ones dropped, one per line (the gateway runs them with `sh -c`).
fn join_commands<'a>(commands: impl Iterator<Item = &'a str>) -> String {
    commands
        .map(str::trim_end)
        .filter(|c| !c.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A regular file (not a symlink, not a directory) of at most `limit` bytes that we can open.
fn check_file(path: &Path, what: &str, limit: u64) -> Result<()> {
    let shown = path.display();
    let meta = std::fs::symlink_metadata(path).map_err(|e| {
        CliError::Usage(if e.kind() == std::io::ErrorKind::NotFound {
            format!("{what} {shown} does not exist")
        } else {
            format!("{what} {shown} cannot be read: {e}")
        })
    })?;
    if meta.file_type().is_symlink() {
        return Err(CliError::Usage(format!(
            "{what} {shown} is a symbolic link; give the file it points to"
        )));
    }
    if !meta.is_file() {
        return Err(CliError::Usage(format!(
            "{what} {shown} is not a regular file"
        )));
    }
    if meta.len() > limit {
        return Err(CliError::Usage(format!(
            "{what} {shown} is {} bytes; the limit is {limit} bytes ({})",
            meta.len(),
            human(limit)
        )));
    }
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| CliError::Usage(format!("{what} {shown} cannot be read: {e}")))
}

fn read_text(path: &Path, what: &str, limit: u64) -> Result<String> {
    check_file(path, what, limit)?;
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::Usage(format!("{what} {} cannot be read: {e}", path.display())))?;
    String::from_utf8(bytes)
        .map_err(|_| CliError::Usage(format!("{what} {} is not UTF-8 text", path.display())))
}

fn human(bytes: u64) -> String {
    if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{} KiB", bytes / KIB)
    }
}

/// A file to upload with the task: its name (the gateway stores it as `attachments/<name>`)
/// and content.
#[derive(Debug)]
pub struct Attachment {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Reads the `--attach` files after checking them all, or says which one is wrong.
pub fn attachments(args: &CreateArgs) -> Result<Vec<Attachment>> {
    if args.attach.len() > MAX_ATTACHMENTS {
        return Err(CliError::Usage(format!(
            "{} attachments given; at most {MAX_ATTACHMENTS} are allowed",
            args.attach.len()
        )));
    }
    let mut names: Vec<String> = Vec::new();
    for path in &args.attach {
        check_file(path, "attachment", MAX_ATTACHMENT_BYTES)?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.chars().any(|c| c.is_control() || c == '"' || c == '\\'))
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "attachment {}: its name must be UTF-8 without quotes, backslashes or control characters",
                    path.display()
                ))
            })?;
        if names.iter().any(|n| n == name) {
            return Err(CliError::Usage(format!(
                "two attachments are named {name}; the task keeps files by name"
            )));
        }
        names.push(name.to_owned());
    }
    args.attach
        .iter()
        .zip(names)
        .map(|(path, name)| {
            let bytes = std::fs::read(path).map_err(|e| {
                CliError::Usage(format!("attachment {} cannot be read: {e}", path.display()))
            })?;
            Ok(Attachment { name, bytes })
        })
        .collect()
}

/// The `multipart/form-data` body of `POST /v1/tasks`: the request as the `task` part, then
/// one part per file.
pub fn multipart(request: &CreateTaskRequest, files: &[Attachment]) -> Payload {
    let task = serde_json::to_vec(request).expect("request types serialise to JSON");
    // A boundary that occurs in no part.
    let boundary = loop {
        let candidate = format!("cynork-{}", uuid::Uuid::new_v4().simple());
        let needle = candidate.as_bytes();
        let inside = |bytes: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        if !inside(&task) && !files.iter().any(|f| inside(&f.bytes)) {
            break candidate;
        }
    };
    let mut body =
        Vec::with_capacity(task.len() + files.iter().map(|f| f.bytes.len() + 256).sum::<usize>());
    let mut part = |disposition: String, content_type: &str, bytes: &[u8]| {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\nContent-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    };
    part(format!("name=\"{TASK_PART}\""), "application/json", &task);
    for file in files {
        part(
            format!("name=\"file\"; filename=\"{}\"", file.name),
            "application/octet-stream",
            &file.bytes,
        );
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Payload::Raw {
        content_type: format!("multipart/form-data; boundary={boundary}"),
        bytes: body,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command, TaskCommand};

    fn args(extra: &[&str]) -> CreateArgs {
        let argv = ["cynork", "task", "create"].iter().chain(extra.iter());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Task(TaskCommand::Create(args)) => *args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn prompt_is_the_default_mode() {
        let req = create_request(&args(&["what model are you?"])).unwrap();
        assert_eq!(req.prompt, "what model are you?");
        assert_eq!(req.input_mode, Some(InputMode::Prompt));
        assert_eq!(req.use_inference, None);
    }

    #[test]
    fn commands_keep_order_and_drop_blanks() {
        let req = create_request(&args(&[
            "--command",
            "echo a",
            "--command",
            " ",
            "--command",
            "echo b",
        ]))
        .unwrap();
        assert_eq!(req.prompt, "echo a\necho b");
        assert_eq!(req.input_mode, Some(InputMode::Commands));
    }

    #[test]
    fn inline_text_can_be_a_script() {
        let req = create_request(&args(&["-p", "echo hi", "--input-mode", "script"])).unwrap();
        assert_eq!(req.input_mode, Some(InputMode::Script));
    }

    #[test]
    fn contradicting_mode_is_a_usage_error() {
        let err =
            create_request(&args(&["--command", "ls", "--input-mode", "script"])).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
    }

    #[test]
    fn script_file_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s.sh");
        std::fs::write(&script, "echo from script\n").unwrap();
        let req = create_request(&args(&["-s", script.to_str().unwrap()])).unwrap();
        assert_eq!(req.prompt, "echo from script\n");
        assert_eq!(req.input_mode, Some(InputMode::Script));

        let big = dir.path().join("big.sh");
        std::fs::write(&big, vec![b'#'; (MAX_SCRIPT_BYTES + 1) as usize]).unwrap();
        let err = create_request(&args(&["-s", big.to_str().unwrap()])).unwrap_err();
        assert!(err.to_string().contains("256 KiB"), "{err}");
    }

    #[test]
    fn bad_attachments_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.txt");
        let err = attachments(&args(&["hi", "-a", missing.to_str().unwrap()])).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert_eq!(err.exit_code(), 2);

        let err = attachments(&args(&["hi", "-a", dir.path().to_str().unwrap()])).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");

        let real = dir.path().join("real.txt");
        std::fs::write(&real, "x").unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = attachments(&args(&["hi", "-a", link.to_str().unwrap()])).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");

        let files = attachments(&args(&["hi", "-a", real.to_str().unwrap()])).unwrap();
        assert_eq!(
            (files[0].name.as_str(), files[0].bytes.as_slice()),
            ("real.txt", &b"x"[..])
        );
        assert!(
            create_request(&args(&["hi", "-a", real.to_str().unwrap()]))
                .unwrap()
                .attachments
                .is_empty()
        );

        let other = dir.path().join("sub");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("real.txt"), "y").unwrap();
        let twice = other.join("real.txt");
        let err = attachments(&args(&[
            "hi",
            "-a",
            real.to_str().unwrap(),
            "-a",
            twice.to_str().unwrap(),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("two attachments"), "{err}");
    }

    #[test]
    fn the_multipart_body_holds_the_task_and_each_file() {
        let request = create_request(&args(&["hi"])).unwrap();
        let files = [
            Attachment {
                name: "a.txt".into(),
                bytes: b"first".to_vec(),
            },
            Attachment {
                name: "b.bin".into(),
                bytes: vec![0, 255, 13, 10],
            },
        ];
        let Payload::Raw {
            content_type,
            bytes,
        } = multipart(&request, &files)
        else {
            panic!("multipart is raw");
        };
        let boundary = content_type
            .strip_prefix("multipart/form-data; boundary=")
            .unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(
            text.matches(&format!("--{boundary}\r\n")).count(),
            3,
            "{text}"
        );
        assert!(text.ends_with(&format!("--{boundary}--\r\n")), "{text}");
        assert!(
            text.contains(
                "name=\"task\"\r\nContent-Type: application/json\r\n\r\n{\"prompt\":\"hi\""
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "filename=\"a.txt\"\r\nContent-Type: application/octet-stream\r\n\r\nfirst\r\n"
            ),
            "{text}"
        );
        let raw = [0u8, 255, 13, 10, 13, 10];
        assert!(
            bytes.windows(raw.len()).any(|w| w == raw),
            "binary content is kept as is"
        );
    }

    #[test]
    fn too_many_attachments() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let mut argv = vec!["hi"];
        let path = file.to_str().unwrap();
        for _ in 0..=MAX_ATTACHMENTS {
            argv.extend(["-a", path]);
        }
        let err = attachments(&args(&argv)).unwrap_err();
        assert!(err.to_string().contains("at most 16"), "{err}");
    }
}
