//! `cynork chat`: an interactive conversation (streamed) or one message (`-m`), through the
//! gateway's OpenAI-compatible `POST /v1/chat/completions`.
//!
//! The chat belongs to a project when given `--project-id` or when there is an active project
//! (`cynork project set`): its id goes in the `OpenAI-Project` header of every request.
//!
//! The gateway stores the conversation in a thread and names it in `X-CyNodeAI-Thread-Id`;
//! every turn after the first sends that thread's stored history (where secrets are already
//! redacted) plus the new line, and names the thread, so the model sees the whole conversation.

use std::io::Write;

use cynode_contracts::routes;
use cynode_contracts::user::{ChatMessageList, PM_MODEL};
use reqwest::Method;
use serde_json::{Value, json};

use super::Context;
use crate::cli::ChatArgs;
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::output::{Format, emit};

pub async fn run(ctx: &Context, args: ChatArgs) -> Result<()> {
    let mut client = ctx.client()?;
    // The project goes in OpenAI's own header, as an id (a slug is looked up first).
    let project = super::project::chosen(ctx, &mut client, args.project_id.as_deref()).await?;
    let mut client = client.for_model_calls();
    if let Some(project) = project {
        client = client.with_header(routes::user::CHAT_PROJECT_HEADER, project.to_string());
    }
    let model = args
        .model
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| PM_MODEL.to_owned());
    match args.message {
        Some(text) => one_shot(ctx, &mut client, &model, &text).await,
        None => session(&mut client, &model).await,
    }
}

fn request(model: &str, messages: Vec<Value>, stream: bool) -> Value {
    json!({"model": model, "messages": messages, "stream": stream})
}

async fn one_shot(ctx: &Context, client: &mut Client, model: &str, text: &str) -> Result<()> {
    let body = request(model, vec![json!({"role": "user", "content": text})], false);
    let completion: Value = client
        .call(
            Method::POST,
            &routes::fill(routes::user::CHAT_COMPLETIONS, &[]),
            &[],
            Some(&body),
        )
        .await?;
    let content = completion["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    match ctx.format {
        Format::Json => emit(ctx.format, &completion, String::new),
        Format::Table => println!("{content}"),
    }
    Ok(())
}

/// Reads lines until `/exit`, `/quit` or end of input; a failed turn is reported on stderr and
/// the session goes on.
async fn session(client: &mut Client, model: &str) -> Result<()> {
    eprintln!("chatting with {model}; /exit or Ctrl-D leaves");
    let mut thread: Option<String> = None;
    loop {
        eprint!("> ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        let read = std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| CliError::Usage(format!("cannot read from stdin: {e}")))?;
        if read == 0 {
            eprintln!();
            return Ok(());
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('/') {
            match line.to_ascii_lowercase().as_str() {
                "/exit" | "/quit" => return Ok(()),
                "/help" => eprintln!("/exit, /quit: leave; anything else is sent to {model}"),
                other => eprintln!("unknown command {other}; /help lists the commands"),
            }
            continue;
        }
        match turn(client, model, thread.as_deref(), line).await {
            Ok(id) => thread = id.or(thread),
            Err(e) => eprintln!("error: {e}"),
        }
    }
}

/// Sends the thread's history and `line`, prints the answer as it streams in. Returns the
/// thread the gateway stored the exchange in.
async fn turn(
    client: &mut Client,
    model: &str,
    thread: Option<&str>,
    line: &str,
) -> Result<Option<String>> {
    let mut messages = match thread {
        Some(id) => history(client, id).await?,
        None => Vec::new(),
    };
    messages.push(json!({"role": "user", "content": line}));
    let mut resp = client
        .post_streaming(
            &routes::fill(routes::user::CHAT_COMPLETIONS, &[]),
            &request(model, messages, true),
        )
        .await?;
    let id = resp
        .headers()
        .get(routes::user::CHAT_THREAD_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut stdout = std::io::stdout();
    let mut pending: Vec<u8> = Vec::new();
    let mut failure = None;
    while let Some(chunk) = resp.chunk().await.map_err(|e| client.read_error(&e))? {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = pending.drain(..end + 2).collect();
            let event = String::from_utf8_lossy(&event);
            for data in event.lines().filter_map(|l| l.strip_prefix("data: ")) {
                if data == "[DONE]" {
                    continue;
                }
                let Ok(chunk) = serde_json::from_str::<Value>(data) else {
                    continue;
                };
                if let Some(message) = chunk["error"]["message"].as_str() {
                    failure = Some(message.to_owned());
                }
                if let Some(text) = chunk["choices"][0]["delta"]["content"].as_str() {
                    let _ = stdout.write_all(text.as_bytes());
                    let _ = stdout.flush();
                }
            }
        }
    }
    println!();
    match failure {
        Some(message) => Err(CliError::Server(message)),
        None => Ok(id),
    }
}

async fn history(client: &mut Client, thread: &str) -> Result<Vec<Value>> {
    let list: ChatMessageList = client
        .call(
            Method::GET,
            &routes::fill(routes::user::CHAT_THREAD_MESSAGES, &[thread]),
            &[("limit", "200".to_owned())],
            None,
        )
        .await?;
    Ok(list
        .messages
        .into_iter()
        .map(|m| json!({"role": m.role, "content": m.content}))
        .collect())
}
