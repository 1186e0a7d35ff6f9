//! Passwords in: read from stdin (`--password-stdin`) or typed on the terminal without echo,
//! with the prompts on stderr. A password never appears in argv, in the output or in an error
//! message.

use std::io::{IsTerminal, Read, Write};

use cynode_contracts::user::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};

use crate::error::{CliError, Result};

/// Everything on stdin, less one trailing newline (the `echo pw |` artefact); anything else is
/// part of the password.
pub fn read_stdin() -> Result<String> {
    Ok(strip_newline(&read_all_stdin()?).to_owned())
}

/// Two lines from stdin: the current password, then the new one (`auth passwd
/// --password-stdin`).
pub fn read_stdin_pair() -> Result<(String, String)> {
    two_lines(&read_all_stdin()?)
}

fn read_all_stdin() -> Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| CliError::Usage(format!("cannot read the password from stdin: {e}")))?;
    Ok(text)
}

fn strip_newline(text: &str) -> &str {
    let text = text.strip_suffix('\n').unwrap_or(text);
    text.strip_suffix('\r').unwrap_or(text)
}

fn two_lines(text: &str) -> Result<(String, String)> {
    let usage = || {
        CliError::Usage(
            "--password-stdin expects two lines: the current password, then the new one".into(),
        )
    };
    let (current, new) = strip_newline(text).split_once('\n').ok_or_else(usage)?;
    if new.contains('\n') {
        return Err(usage());
    }
    Ok((strip_newline(current).to_owned(), new.to_owned()))
}

/// Prompts on stderr and reads one line from the terminal with echo off.
pub fn prompt_hidden(label: &str) -> Result<String> {
    eprint!("{label}");
    let _ = std::io::stderr().flush();
    rpassword::read_password().map_err(|e| {
        CliError::Usage(format!(
            "cannot read the password from the terminal ({e}); pipe it in with --password-stdin"
        ))
    })
}

/// Passwords are prompted for only when stdin is a terminal; otherwise this is a usage error
/// naming `alternative`, rather than a prompt a script would hang on.
pub fn require_terminal(alternative: &str) -> Result<()> {
    if std::io::stdin().is_terminal() {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "stdin is not a terminal, so the password cannot be prompted for; give {alternative}"
        )))
    }
}

/// A new password typed twice on the terminal (see [`require_terminal`]).
pub fn prompt_new(alternative: &str) -> Result<String> {
    require_terminal(alternative)?;
    let first = prompt_hidden("Password: ")?;
    check_new(&first)?;
    let second = prompt_hidden("Password (again): ")?;
    if first != second {
        return Err(CliError::Usage("the two passwords differ".into()));
    }
    Ok(first)
}

/// The gateway's length rules, checked before anything is sent.
pub fn check_new(password: &str) -> Result<()> {
    if password.is_empty() {
        return Err(CliError::Usage("the password is empty".into()));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(CliError::Usage(format!(
            "the password is too short: at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(CliError::Usage(format!(
            "the password is too long: at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trailing_newline_is_removed() {
        assert_eq!(strip_newline("pw\n"), "pw");
        assert_eq!(strip_newline("pw\r\n"), "pw");
        assert_eq!(strip_newline("pw\n\n"), "pw\n");
        assert_eq!(strip_newline(" pw "), " pw ");
    }

    #[test]
    fn passwd_reads_exactly_two_lines() {
        assert_eq!(
            two_lines("old password\nnew password\n").unwrap(),
            ("old password".into(), "new password".into())
        );
        assert_eq!(
            two_lines("old\r\nnew").unwrap(),
            ("old".into(), "new".into())
        );
        for bad in ["only one\n", "", "a\nb\nc\n"] {
            let err = two_lines(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
            assert!(err.to_string().contains("two lines"), "{err}");
        }
    }

    #[test]
    fn new_passwords_are_checked_without_being_echoed() {
        assert!(check_new("twelve chars").is_ok());
        for bad in ["", "short-pw", &"x".repeat(MAX_PASSWORD_BYTES + 1)] {
            let err = check_new(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(bad.is_empty() || !err.to_string().contains(bad), "{err}");
        }
    }
}
