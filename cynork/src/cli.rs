//! The command line, declared with clap's derive API. Help texts here are what `--help`, the
//! shell completions and the man page show.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use cynode_contracts::preferences::{ScopeType, ValueType};
use cynode_contracts::user::{DEFAULT_PAGE, Effect, MAX_PAGE, SubjectType, TaskStatus};
use uuid::Uuid;

use crate::error::EXIT_CODES_HELP;
use crate::output::Format;

pub const DEFAULT_GATEWAY: &str = "http://localhost:12080";

/// cynork, the CyNodeAI command-line client
///
/// Log in to a CyNodeAI user gateway, hand it tasks and read their results.
#[derive(Debug, Parser)]
#[command(name = "cynork", version, propagate_version = true, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// Config file [default: $XDG_CONFIG_HOME/cynork/config.yaml]
    #[arg(short = 'c', long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Gateway base URL [default: saved by `auth login`, else http://localhost:12080]
    #[arg(long, global = true, env = "CYNORK_GATEWAY_URL", value_name = "URL")]
    pub gateway: Option<String>,

    /// Output format
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print cynork's version
    Version,
    /// Check that the gateway answers and whether it is ready to run tasks
    Status,
    /// Log in, log out, show who is logged in
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Create tasks and follow them to their results
    #[command(subcommand)]
    Task(TaskCommand),
    /// Create, list and revoke personal API keys
    ///
    /// An API key (`cyn_...`) works wherever a login does and does not expire with the
    /// 15-minute access token: give it to OpenAI clients, scripts and tools as
    /// `Authorization: Bearer <key>`. cynork itself uses one from CYNORK_API_KEY, or from the
    /// file the config key `api_key_file` names, when there is no login session.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Your token usage: in total, per model, per API key and per UTC day
    Usage {
        /// Count usage recorded at or after this RFC 3339 instant (e.g. 2026-12-01T00:00:00Z)
        #[arg(long, value_name = "TIME")]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Count usage recorded before this RFC 3339 instant
        #[arg(long, value_name = "TIME")]
        until: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// List, inspect, drain and undrain worker nodes (needs a system role)
    #[command(subcommand)]
    Node(NodeCommand),
    /// Read the access audit and the MCP audit (needs the system admin role)
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Create, list, disable and enable user accounts (needs a system role; changes need
    /// system admin)
    #[command(subcommand)]
    User(UserCommand),
    /// Create groups and manage their members (needs a system role; changes need system admin)
    #[command(subcommand)]
    Group(GroupCommand),
    /// Create and manage projects, their role bindings, and the active project
    ///
    /// Anyone may create a project and becomes its owner; what else you may do in one depends
    /// on your roles there (`cynork role list`). `project set` picks the project that
    /// `task create` and `chat` use when they are not given --project-id.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// The roles and what each of them allows
    #[command(subcommand)]
    Role(RoleCommand),
    /// List, grant and revoke role bindings, system-wide (--system) or in one project
    /// (--project)
    ///
    /// A role bound at system scope holds in every project too (system admin as a project
    /// owner). Granting or revoking a role needs it, or a stronger one, at that scope: system
    /// admin for system bindings, a project's owner or admin for its bindings. `cynork project
    /// rbac` is the same for one project.
    #[command(subcommand)]
    Rbac(RbacCommand),
    /// Access rules: allow or deny one action on matching resources, before roles decide
    /// (needs the system admin role)
    #[command(subcommand)]
    Rule(RuleCommand),
    /// Read and change preferences, and see the effective ones of a task or project
    ///
    /// Scopes, lowest precedence first: system, group, user, project, task. Everyone reads
    /// system entries, a group's entries its members, and a project's entries whoever has a
    /// role in it; changing them needs system admin (system, group), or the project's owner or
    /// admin role. User entries are your own; task entries go with the task. A `null` value
    /// hides the key set at lower scopes.
    #[command(subcommand)]
    Prefs(PrefsCommand),
    /// Chat with a model through the gateway
    ///
    /// Without -m: reads lines, streams each answer as it arrives, and leaves on /exit, /quit
    /// or end of input. The gateway keeps the conversation (its thread); each turn sends the
    /// thread's history with the new line. Works with a login or an API key.
    Chat(ChatArgs),
    /// Print a shell completion script
    ///
    /// bash: `cynork completion bash > /etc/bash_completion.d/cynork`;
    /// zsh: `cynork completion zsh > "${fpath[1]}/_cynork"`;
    /// fish: `cynork completion fish > ~/.config/fish/completions/cynork.fish`
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into a directory
    Man {
        /// Write cynork.1, cynork-task.1, ... into this directory instead of printing cynork.1
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Log in and save the session in the config file
    ///
    /// Prompts for the password without echo, or reads it from stdin with --password-stdin
    /// (one trailing newline is removed). There is deliberately no --password flag: argv is
    /// visible to every user of the machine.
    Login {
        /// User handle [prompted for when absent]
        #[arg(short = 'u', long, value_name = "HANDLE")]
        user: Option<String>,
        /// Read the password from stdin instead of prompting (needs --user)
        #[arg(long, requires = "user")]
        password_stdin: bool,
    },
    /// Revoke the session on the gateway and forget it locally
    Logout,
    /// Show the logged-in user
    Whoami,
    /// Trade the saved refresh token for a new token pair now (cynork also does this by itself
    /// when the access token expires)
    Refresh,
    /// Change your own password; your other sessions end
    ///
    /// Prompts on stderr, without echo, for the current password and the new one twice; or
    /// reads two lines from stdin with --password-stdin: the current password, then the new
    /// one.
    Passwd {
        /// Read the current and the new password from stdin, one per line
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Create a key and print it; it is shown this once and cannot be shown again
    ///
    /// Needs a login session (`cynork auth login`): an API key cannot create keys.
    Create {
        /// What the key is for (1 to 128 characters)
        #[arg(long, value_name = "NAME")]
        name: String,
        /// Days until the key stops working (1 to 3650) [default: until revoked]
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_in_days: Option<u32>,
    },
    /// List your keys, newest first (never the keys themselves)
    List,
    /// Revoke a key; it is refused from the next request on
    Revoke {
        /// The key's id, as `apikey list` shows it
        #[arg(value_name = "ID")]
        id: Uuid,
        /// Do not ask for confirmation
        #[arg(short = 'y', long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Every node: state, whether it takes jobs now, running jobs and capacity
    List,
    /// One node in full: labels, models, capacity, drain deadline, last seen
    Get {
        /// The node's slug
        slug: String,
    },
    /// Take a node out of service: no new jobs; running jobs finish, or after --deadline run
    /// again on another node
    Drain {
        /// The node's slug
        slug: String,
        /// Seconds until jobs still running there are stopped and requeued elsewhere (1 to
        /// 604800) [default: let them finish]
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=604_800))]
        deadline: Option<u64>,
    },
    /// Put a drained node back in service
    Undrain {
        /// The node's slug
        slug: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Access events, newest first: membership changes, role grants and revokes, user state
    /// changes and denied requests
    List(AuditListArgs),
    /// One access event in full
    Get {
        /// The event's id, as `audit list` shows it
        #[arg(value_name = "EVENT_ID")]
        id: Uuid,
    },
    /// MCP tool calls, newest first: which agent called which tool, allowed or denied, and
    /// how it ended (arguments and results are never kept)
    Mcp(McpAuditArgs),
}

#[derive(Debug, clap::Args)]
pub struct AuditListArgs {
    /// Only events about this kind of resource (e.g. project, group, user, task)
    #[arg(long, value_name = "TYPE")]
    pub resource_type: Option<String>,
    /// Only events by this user
    #[arg(long, value_name = "UUID")]
    pub actor_id: Option<Uuid>,
    /// Only events of this action (e.g. task.cancel)
    #[arg(long, value_name = "ACTION")]
    pub action: Option<String>,
    /// Only allowed or only denied ones
    #[arg(long, value_enum)]
    pub decision: Option<DecisionArg>,
    /// Only events at or after this time (RFC 3339)
    #[arg(long, value_name = "TIME")]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only events before this time (RFC 3339)
    #[arg(long, value_name = "TIME")]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// At most this many events (1..=200)
    #[arg(short = 'l', long, default_value_t = DEFAULT_PAGE, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PAGE)))]
    pub limit: u32,
    /// Skip this many (the `next_offset` of an earlier page)
    #[arg(long, value_name = "N")]
    pub offset: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user account
    ///
    /// The initial password is prompted for twice on stderr without echo (stdin must be a
    /// terminal), read from stdin with --password-stdin (one trailing newline is removed), or
    /// left unset with --no-password: then a one-time set-password token is printed, for the
    /// user to redeem. There is deliberately no --password flag: argv is visible to every user
    /// of the machine.
    Create(UserCreateArgs),
    /// List user accounts by handle
    List(UserListArgs),
    /// Show one user account
    Get(UserRef),
    /// Lock a user out: every session, API key and agent token of theirs stops working
    Disable(UserRef),
    /// Let a disabled user log in again
    Enable(UserRef),
    /// Set a user's password, or issue a one-time set-password token; their sessions end
    ///
    /// Prompts twice without echo, reads stdin with --password-stdin, or with --token prints a
    /// one-time set-password token instead.
    ResetPassword {
        #[command(flatten)]
        user: UserRef,
        /// Read the new password from stdin
        #[arg(long, conflicts_with = "token")]
        password_stdin: bool,
        /// Set no password; print a one-time set-password token for the user instead
        #[arg(long)]
        token: bool,
    },
    /// End every session of a user (they can log in again)
    RevokeSessions(UserRef),
}

#[derive(Debug, Args)]
pub struct UserRef {
    /// The user's handle or id
    #[arg(value_name = "USER")]
    pub user: String,
}

#[derive(Debug, Args)]
pub struct UserCreateArgs {
    /// Lowercase letters, digits, `.`, `_`, `-`; at most 64 characters
    #[arg(value_name = "HANDLE")]
    pub handle: String,
    /// The name to show
    #[arg(long, value_name = "NAME")]
    pub display_name: Option<String>,
    /// The user's email address
    #[arg(long, value_name = "EMAIL")]
    pub email: Option<String>,
    /// Read the initial password from stdin instead of prompting
    #[arg(long, conflicts_with = "no_password")]
    pub password_stdin: bool,
    /// Set no password; print a one-time set-password token (and its expiry) instead
    #[arg(long)]
    pub no_password: bool,
}

#[derive(Debug, Args)]
pub struct UserListArgs {
    /// Only handles, display names or emails containing this text
    #[arg(long, value_name = "TEXT")]
    pub q: Option<String>,
    /// Only enabled (true) or only disabled (false) users
    #[arg(long, value_name = "BOOL")]
    pub active: Option<bool>,
    /// Only members of this group (slug or id)
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// At most this many users (1..=200)
    #[arg(short = 'l', long, default_value_t = DEFAULT_PAGE, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PAGE)))]
    pub limit: u32,
    /// Skip this many (the `next_offset` of an earlier page)
    #[arg(long, value_name = "N")]
    pub offset: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group
    Create {
        /// Lowercase letters, digits, `.`, `_`, `-`; at most 64 characters
        #[arg(value_name = "SLUG")]
        slug: String,
        /// The name to show [default: the slug]
        #[arg(long, value_name = "NAME")]
        display_name: Option<String>,
    },
    /// List groups
    List,
    /// Show one group
    Get(GroupRef),
    /// Rename a group, or disable it (its members lose what it granted) and enable it again
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true).args(["display_name", "active"])))]
    Update {
        #[command(flatten)]
        group: GroupRef,
        /// The new name to show
        #[arg(long, value_name = "NAME")]
        display_name: Option<String>,
        /// Enable (true) or disable (false) the group
        #[arg(long, value_name = "BOOL")]
        active: Option<bool>,
    },
    /// List a group's members
    Members(GroupRef),
    /// Add a user to a group
    Add {
        /// The group's slug or id
        #[arg(value_name = "GROUP")]
        group: String,
        /// The user's handle or id
        #[arg(value_name = "USER")]
        user: String,
    },
    /// Remove a user from a group
    Remove {
        /// The group's slug or id
        #[arg(value_name = "GROUP")]
        group: String,
        /// The user's handle or id
        #[arg(value_name = "USER")]
        user: String,
    },
}

#[derive(Debug, Args)]
pub struct GroupRef {
    /// The group's slug or id
    #[arg(value_name = "GROUP")]
    pub group: String,
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project; you become its owner
    Create {
        /// Lowercase letters, digits, `.`, `_`, `-`; at most 64 characters
        #[arg(long, value_name = "SLUG")]
        slug: String,
        /// The project's title
        #[arg(long, value_name = "TITLE")]
        title: String,
        /// What the project is for
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },
    /// List the projects you may read, archived ones too unless --active-only
    List {
        /// Only projects that are not archived
        #[arg(long)]
        active_only: bool,
    },
    /// Show one project, with your roles in it
    Get(ProjectRef),
    /// Change a project's title or description
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true).args(["title", "description"])))]
    Update {
        #[command(flatten)]
        project: ProjectRef,
        /// The new title
        #[arg(long, value_name = "TITLE")]
        title: Option<String>,
        /// The new description (an empty one clears it)
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },
    /// Archive a project: it is kept, read-only, and left out of `project list --active-only`
    Delete {
        #[command(flatten)]
        project: ProjectRef,
        /// Do not ask for confirmation
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Make a project the active one, or clear it with `none`
    ///
    /// The active project is saved in the config file, next to the session; `task create`
    /// files tasks under it and `chat` talks in it (the `OpenAI-Project` header) unless given
    /// --project-id. The project is checked on the gateway first.
    Set {
        /// The project's slug or id, or `none`
        #[arg(value_name = "PROJECT")]
        project: String,
    },
    /// List, grant and revoke the role bindings of one project
    #[command(subcommand)]
    Rbac(ProjectRbacCommand),
}

#[derive(Debug, Args)]
pub struct ProjectRef {
    /// The project's slug or id
    #[arg(value_name = "PROJECT")]
    pub project: String,
}

#[derive(Debug, Subcommand)]
pub enum ProjectRbacCommand {
    /// The project's role bindings: binding id, role, subject type, subject, scope
    List(ProjectRef),
    /// Grant a role in the project to a user or a group
    Grant {
        #[command(flatten)]
        project: ProjectRef,
        #[command(flatten)]
        binding: BindingArgs,
    },
    /// Revoke a role in the project from a user or a group
    Revoke {
        #[command(flatten)]
        project: ProjectRef,
        #[command(flatten)]
        binding: BindingArgs,
    },
}

/// A role and who holds it.
#[derive(Debug, Args)]
#[group(skip)]
#[command(group(clap::ArgGroup::new("subject").required(true).args(["user", "group"])))]
pub struct BindingArgs {
    /// The role: owner (project scope only), admin, operator, member or viewer
    #[arg(long, value_name = "ROLE")]
    pub role: String,
    /// The user (handle or id)
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// The group (slug or id)
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
}

/// Where a binding holds: exactly one of --system and --project.
#[derive(Debug, Args)]
#[group(skip)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["system", "project"])))]
pub struct ScopeArgs {
    /// System scope: the role holds everywhere
    #[arg(long)]
    pub system: bool,
    /// Project scope: the role holds in this project (slug or id)
    #[arg(long, value_name = "PROJECT")]
    pub project: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RbacCommand {
    /// The role bindings of a scope: binding id, role, subject type, subject, scope
    List {
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Grant a role to a user or a group
    Grant {
        #[command(flatten)]
        scope: ScopeArgs,
        #[command(flatten)]
        binding: BindingArgs,
    },
    /// Revoke a role from a user or a group
    Revoke {
        #[command(flatten)]
        scope: ScopeArgs,
        #[command(flatten)]
        binding: BindingArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Every role, what it is for, and the actions it allows (on anything in scope, and on
    /// the holder's own resources only)
    List,
}

#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Every access rule, highest priority first
    List,
    /// Create an access rule
    Create(RuleCreateArgs),
    /// Delete an access rule
    Delete {
        /// The rule's id, as `rule list` shows it
        #[arg(value_name = "RULE_ID")]
        id: Uuid,
        /// Do not ask for confirmation
        #[arg(short = 'y', long)]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub struct RuleCreateArgs {
    /// Whether the rule is for a user or a group
    #[arg(long, value_enum, value_name = "TYPE")]
    pub subject_type: SubjectArg,
    /// The user (handle or id) or group (slug or id) [default: every user, or every group]
    #[arg(long, value_name = "SUBJECT")]
    pub subject: Option<String>,
    /// The action, e.g. mcp.tool.invoke or model.use
    #[arg(long, value_name = "ACTION")]
    pub action: String,
    /// The kind of resource, e.g. mcp.tool or model
    #[arg(long, value_name = "TYPE")]
    pub resource_type: String,
    /// A resource name, or a prefix ending in `*`; `*` alone matches all
    #[arg(long, value_name = "PATTERN")]
    pub pattern: String,
    /// allow or deny
    #[arg(long, value_enum, value_name = "EFFECT")]
    pub effect: DecisionArg,
    /// Rules of the highest matching priority decide, deny over allow
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub priority: i32,
    /// Why, for whoever reads the rule later
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SubjectArg {
    User,
    Group,
}

impl SubjectArg {
    pub fn subject_type(self) -> SubjectType {
        match self {
            Self::User => SubjectType::User,
            Self::Group => SubjectType::Group,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct McpAuditArgs {
    /// Only calls about this task
    #[arg(long, value_name = "UUID")]
    pub task_id: Option<uuid::Uuid>,
    /// Only calls from this job's sandbox
    #[arg(long, value_name = "UUID")]
    pub job_id: Option<uuid::Uuid>,
    /// Only calls of this tool (e.g. db.task.get)
    #[arg(long, value_name = "NAME")]
    pub tool: Option<String>,
    /// Only allowed or only denied calls
    #[arg(long, value_enum)]
    pub decision: Option<DecisionArg>,
    /// Only calls by this agent type (pm, pa, sandbox, anonymous)
    #[arg(long, value_name = "TYPE")]
    pub agent: Option<String>,
    /// Only calls at or after this time (RFC 3339)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only calls before this time (RFC 3339)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Most entries (1 to 500) [default: 100]
    #[arg(short = 'l', long, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub limit: Option<u32>,
    /// The next_cursor of the previous page
    #[arg(long)]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DecisionArg {
    Allow,
    Deny,
}

impl DecisionArg {
    pub fn as_str(self) -> &'static str {
        self.effect().as_str()
    }

    pub fn effect(self) -> Effect {
        match self {
            Self::Allow => Effect::Allow,
            Self::Deny => Effect::Deny,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Create a task (natural-language prompt unless told otherwise)
    Create(Box<CreateArgs>),
    /// List your tasks, newest first
    List(ListArgs),
    /// Show one task
    Get(TaskRef),
    /// Show a task's status and, once it finished, its output
    Result {
        #[command(flatten)]
        task: TaskRef,
        /// Wait until the task reaches a terminal status
        #[arg(short = 'w', long)]
        wait: bool,
    },
    /// Print a task's stdout and stderr
    Logs {
        #[command(flatten)]
        task: TaskRef,
        /// Which stream to print; with `all`, the task's stderr goes to cynork's stderr
        #[arg(long, value_enum, default_value_t = LogStream::All)]
        stream: LogStream,
        /// Keep printing output as the task's jobs print it, until the task finishes
        #[arg(short = 'F', visible_short_alias = 'f', long)]
        follow: bool,
    },
    /// Cancel a task that has not finished
    Cancel {
        #[command(flatten)]
        task: TaskRef,
        /// Do not ask for confirmation
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Show a prompt task's Project Manager steps (model decisions, jobs, output)
    Steps(TaskRef),
    /// List a task's artifacts (attached and written files) and download them
    #[command(subcommand)]
    Artifacts(ArtifactsCommand),
    /// Follow a task's status live until it finishes
    ///
    /// On a terminal it shows a spinner line; when piped it prints one line per status change.
    Watch {
        #[command(flatten)]
        task: TaskRef,
        /// Seconds between polls of the gateway (at least 1)
        #[arg(short = 'n', long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
        interval: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ArtifactsCommand {
    /// List a task's artifacts: id, name (path), content type, size
    List(TaskRef),
    /// Download an artifact into a file
    Get {
        #[command(flatten)]
        task: TaskRef,
        /// The artifact's id, as `task artifacts list` shows it
        #[arg(value_name = "ARTIFACT_ID")]
        artifact_id: Uuid,
        /// Write it here (parent directories are created)
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
        /// Replace the file if it exists
        #[arg(long)]
        force: bool,
    },
}

/// The scope of preference entries.
#[derive(Debug, Args)]
pub struct PrefScope {
    /// system, user, project or task
    #[arg(long, value_enum, value_name = "SCOPE")]
    pub scope_type: ScopeType,
    /// The user, project or task [required for project and task; user: yourself; none for
    /// system]
    #[arg(long, value_name = "UUID")]
    pub scope_id: Option<Uuid>,
}

#[derive(Debug, Subcommand)]
pub enum PrefsCommand {
    /// List one scope's entries by key: key, value as JSON, last change
    List {
        #[command(flatten)]
        scope: PrefScope,
        /// Only keys starting with this
        #[arg(long, value_name = "PREFIX")]
        key_prefix: Option<String>,
        /// At most this many entries (1..=100)
        #[arg(short = 'l', long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100))]
        limit: u32,
        /// Continue from the `next_cursor` of an earlier page
        #[arg(long, value_name = "CURSOR")]
        cursor: Option<String>,
    },
    /// Show one entry
    Get {
        #[command(flatten)]
        scope: PrefScope,
        #[arg(long, value_name = "KEY")]
        key: String,
    },
    /// Create or update an entry
    Set {
        #[command(flatten)]
        scope: PrefScope,
        #[arg(long, value_name = "KEY")]
        key: String,
        /// The value as JSON: `'"concise"'`, `80`, `true`, `'["rust","go"]'`, `null`
        #[arg(
            long,
            value_name = "JSON",
            required_unless_present = "value_file",
            conflicts_with = "value_file"
        )]
        value: Option<String>,
        /// Read the JSON value from this file (at most 64 KiB)
        #[arg(long, value_name = "FILE")]
        value_file: Option<PathBuf>,
        /// The value's type [default: the value's own; needed for a new `null`]
        #[arg(long, value_enum, value_name = "TYPE")]
        value_type: Option<ValueType>,
        /// Change it only if it is at this version (else exit 5, nothing changed)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
        expected_version: Option<i64>,
        /// Why, for the audit log
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Delete an entry
    Delete {
        #[command(flatten)]
        scope: PrefScope,
        #[arg(long, value_name = "KEY")]
        key: String,
        /// Delete it only if it is at this version (else exit 5, nothing changed)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
        expected_version: Option<i64>,
        /// Why, for the audit log
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// The effective preferences of a task, of you in a project, or of you alone, with the
    /// scope each value comes from
    Effective {
        #[arg(long, value_name = "UUID", conflicts_with = "project_id")]
        task_id: Option<Uuid>,
        #[arg(long, value_name = "UUID")]
        project_id: Option<Uuid>,
    },
}

#[derive(Debug, Args)]
pub struct TaskRef {
    /// Task id (UUID) or task name
    #[arg(value_name = "TASK")]
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputModeArg {
    Prompt,
    Script,
    Commands,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogStream {
    Stdout,
    Stderr,
    All,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
            Self::All => "all",
        }
    }
}

/// Exactly one input source: TEXT, --prompt, --task-file, --script, --command or --commands-file.
#[derive(Debug, Args)]
#[group(skip)]
#[command(group(
    clap::ArgGroup::new("input")
        .required(true)
        .args(["text", "prompt", "task_file", "script", "command", "commands_file"])
))]
pub struct CreateArgs {
    /// The task text
    #[arg(value_name = "TEXT")]
    pub text: Option<String>,
    /// The task text, as a flag
    #[arg(
        short = 'p',
        long,
        visible_short_alias = 't',
        visible_alias = "task",
        value_name = "TEXT"
    )]
    pub prompt: Option<String>,
    /// Read the task text from a file (at most 1 MiB)
    #[arg(short = 'f', long, value_name = "FILE")]
    pub task_file: Option<PathBuf>,
    /// Run this shell script file in the sandbox (at most 256 KiB; input mode `script`)
    #[arg(short = 's', long, value_name = "FILE")]
    pub script: Option<PathBuf>,
    /// Run this shell command in the sandbox; repeat for several, run in order (input mode `commands`)
    #[arg(long, value_name = "CMD")]
    pub command: Vec<String>,
    /// Run the commands in this file, one per line (at most 64 KiB; input mode `commands`)
    #[arg(long, value_name = "FILE")]
    pub commands_file: Option<PathBuf>,
    /// How the gateway treats inline text: `prompt` is interpreted by the model and never run
    /// as shell; `script` and `commands` run as shell in the sandbox
    #[arg(long, value_enum, value_name = "MODE")]
    pub input_mode: Option<InputModeArg>,
    /// Attach a file (repeatable; at most 16 files of 10 MiB each)
    #[arg(short = 'a', long, visible_alias = "attachment", value_name = "FILE")]
    pub attach: Vec<PathBuf>,
    /// Name the task (the gateway makes it unique among your tasks)
    #[arg(long, visible_alias = "task-name", value_name = "NAME")]
    pub name: Option<String>,
    /// Project to file the task under, by id or slug [default: the active project (`cynork
    /// project set`), else your default project]
    #[arg(long, value_name = "PROJECT")]
    pub project_id: Option<String>,
    /// Give the sandbox access to node-local inference
    #[arg(long)]
    pub use_inference: bool,
    /// Let the sandbox call the MCP gateway as this task's agent (`$CYNODE_MCP_URL`; the node
    /// attaches the credentials)
    #[arg(long)]
    pub use_mcp: bool,
    /// Run only on a node with this label (repeatable: all of them)
    #[arg(long = "require-label", value_name = "LABEL")]
    pub require_labels: Vec<String>,
    /// Run only on a node whose inference server serves this model
    #[arg(long = "require-model", value_name = "MODEL")]
    pub require_model: Option<String>,
    /// Run only on a node with at least this much memory, MB
    #[arg(long, value_name = "MB", value_parser = clap::value_parser!(u64).range(1..))]
    pub min_memory_mb: Option<u64>,
    /// Run only on a node with at least this many CPU cores
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub min_cpu_cores: Option<u32>,
    /// Run only on a node with a GPU
    #[arg(long)]
    pub require_gpu: bool,
    /// Wait for the task to finish and print its result
    #[arg(short = 'w', long, visible_alias = "result")]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only tasks with this status (queued, running, completed, failed, canceled, superseded)
    #[arg(long, value_name = "STATUS")]
    pub status: Option<TaskStatus>,
    /// At most this many tasks (1..=200)
    #[arg(short = 'l', long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub limit: u32,
    /// Continue from the `next_cursor` of an earlier page
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cynork").chain(args.iter().copied()))
    }

    #[test]
    fn unknown_flag_suggests_the_right_one() {
        let err = parse(&["task", "list", "--limt", "5"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--limit"), "{err}");
    }

    #[test]
    fn exactly_one_input_source() {
        assert!(parse(&["task", "create"]).is_err());
        assert_eq!(
            parse(&["task", "create", "hi", "--command", "ls"])
                .unwrap_err()
                .exit_code(),
            2
        );
        assert!(parse(&["task", "create", "--command", "a", "--command", "b"]).is_ok());
        assert!(parse(&["task", "create", "-t", "hi"]).is_ok());
    }

    #[test]
    fn password_stdin_needs_a_user() {
        assert_eq!(
            parse(&["auth", "login", "--password-stdin"])
                .unwrap_err()
                .exit_code(),
            2
        );
        assert!(parse(&["auth", "login", "-u", "admin", "--password-stdin"]).is_ok());
    }

    #[test]
    fn limits_and_intervals_are_range_checked() {
        assert!(parse(&["task", "list", "-l", "0"]).is_err());
        assert!(parse(&["task", "list", "-l", "201"]).is_err());
        assert!(parse(&["task", "watch", "x", "-n", "0"]).is_err());
        assert!(parse(&["task", "list", "--status", "bogus"]).is_err());
        assert!(parse(&["task", "list", "--status", "queued", "-o", "json"]).is_ok());
    }

    #[test]
    fn apikey_arguments_are_checked() {
        assert!(parse(&["apikey", "create"]).is_err());
        assert!(parse(&["apikey", "create", "--name", "ci"]).is_ok());
        assert!(
            parse(&[
                "apikey",
                "create",
                "--name",
                "ci",
                "--expires-in-days",
                "3650"
            ])
            .is_ok()
        );
        for days in ["0", "3651", "-1", "x"] {
            let err = parse(&[
                "apikey",
                "create",
                "--name",
                "ci",
                "--expires-in-days",
                days,
            ])
            .unwrap_err();
            assert_eq!(err.exit_code(), 2, "{days}");
        }
        assert_eq!(
            parse(&["apikey", "revoke", "not-a-uuid"])
                .unwrap_err()
                .exit_code(),
            2
        );
        assert!(parse(&["apikey", "revoke", &Uuid::new_v4().to_string(), "-y"]).is_ok());
    }

    #[test]
    fn node_and_requirement_arguments_are_checked() {
        assert!(parse(&["node", "list"]).is_ok());
        assert!(parse(&["node", "get"]).is_err());
        assert!(parse(&["node", "drain", "n1", "--deadline", "60"]).is_ok());
        for bad in ["0", "604801", "-1", "soon"] {
            assert!(
                parse(&["node", "drain", "n1", "--deadline", bad]).is_err(),
                "{bad}"
            );
        }
        assert!(
            parse(&[
                "task",
                "create",
                "--command",
                "ls",
                "--require-label",
                "gpu",
                "--require-label",
                "eu",
                "--require-model",
                "qwen",
                "--min-memory-mb",
                "512",
                "--min-cpu-cores",
                "2",
                "--require-gpu"
            ])
            .is_ok()
        );
        assert!(parse(&["task", "create", "--command", "ls", "--min-memory-mb", "0"]).is_err());
    }

    #[test]
    fn prefs_and_artifacts_arguments_are_checked() {
        assert!(parse(&["prefs", "list", "--scope-type", "user"]).is_ok());
        assert!(parse(&["prefs", "list", "--scope-type", "group"]).is_ok());
        assert!(parse(&["prefs", "list", "--scope-type", "team"]).is_err());
        assert!(parse(&["prefs", "list", "--scope-type", "user", "-l", "101"]).is_err());
        assert!(parse(&["prefs", "set", "--scope-type", "user", "--key", "k"]).is_err());
        assert!(
            parse(&[
                "prefs",
                "set",
                "--scope-type",
                "user",
                "--key",
                "k",
                "--value",
                "1"
            ])
            .is_ok()
        );
        let id = Uuid::new_v4().to_string();
        assert!(parse(&["prefs", "effective", "--task-id", &id, "--project-id", &id]).is_err());
        assert!(
            parse(&["task", "artifacts", "get", "t", &id]).is_err(),
            "--out is required"
        );
        assert!(parse(&["task", "artifacts", "get", "t", &id, "--out", "f"]).is_ok());
    }

    #[test]
    fn user_and_group_arguments_are_checked() {
        assert!(parse(&["user", "create", "alice"]).is_ok());
        assert!(parse(&["user", "create", "alice", "--password-stdin"]).is_ok());
        assert!(parse(&["user", "create", "alice", "--no-password", "--email", "a@x"]).is_ok());
        let both = parse(&[
            "user",
            "create",
            "alice",
            "--password-stdin",
            "--no-password",
        ]);
        assert_eq!(both.unwrap_err().exit_code(), 2);
        assert!(
            parse(&["user", "create"]).is_err(),
            "the handle is required"
        );
        assert!(
            parse(&[
                "user", "list", "--active", "false", "--q", "al", "-l", "200"
            ])
            .is_ok()
        );
        for bad in [
            &["user", "list", "--active", "maybe"][..],
            &["user", "list", "-l", "0"],
            &["user", "list", "-l", "201"],
            &["user", "list", "--offset", "-1"],
            &[
                "user",
                "reset-password",
                "bob",
                "--token",
                "--password-stdin",
            ],
            &["group", "update", "ml"],
            &["group", "update", "ml", "--active", "no"],
            &["group", "add", "ml"],
        ] {
            assert_eq!(parse(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
        assert!(parse(&["user", "reset-password", "bob", "--token"]).is_ok());
        assert!(parse(&["group", "update", "ml", "--active", "false"]).is_ok());
        assert!(
            parse(&[
                "group",
                "update",
                "ml",
                "--display-name",
                "ML",
                "--active",
                "true"
            ])
            .is_ok()
        );
        assert!(parse(&["group", "remove", "ml", "alice"]).is_ok());
        assert!(parse(&["auth", "passwd", "--password-stdin"]).is_ok());
    }

    #[test]
    fn project_rbac_and_rule_arguments_are_checked() {
        assert!(parse(&["project", "create", "--slug", "vision", "--title", "Vision"]).is_ok());
        assert!(parse(&["project", "create", "--slug", "vision"]).is_err());
        assert!(
            parse(&["project", "update", "vision"]).is_err(),
            "nothing to change"
        );
        assert!(parse(&["project", "update", "vision", "--description", ""]).is_ok());
        assert!(parse(&["project", "delete", "vision", "-y"]).is_ok());
        assert!(parse(&["project", "set", "none"]).is_ok());
        assert!(parse(&["project", "list", "--active-only"]).is_ok());
        let grant = ["project", "rbac", "grant", "vision", "--role", "member"];
        assert!(parse(&[&grant[..], &["--group", "ml"]].concat()).is_ok());
        for bad in [
            grant.to_vec(),
            [&grant[..], &["--user", "bob", "--group", "ml"]].concat(),
            vec!["project", "rbac", "revoke", "vision", "--user", "bob"],
            vec!["rbac", "grant", "--role", "admin", "--user", "bob"],
            vec![
                "rbac",
                "grant",
                "--system",
                "--project",
                "v",
                "--role",
                "admin",
                "--user",
                "b",
            ],
            vec!["rbac", "list"],
        ] {
            assert_eq!(parse(&bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
        assert!(
            parse(&[
                "rbac", "grant", "--system", "--role", "admin", "--user", "bob"
            ])
            .is_ok()
        );
        assert!(
            parse(&[
                "rbac",
                "revoke",
                "--project",
                "v",
                "--role",
                "viewer",
                "--group",
                "g"
            ])
            .is_ok()
        );
        assert!(parse(&["rbac", "list", "--system"]).is_ok());
        assert!(parse(&["role", "list"]).is_ok());

        let rule = [
            "rule",
            "create",
            "--subject-type",
            "group",
            "--action",
            "model.use",
            "--resource-type",
            "model",
            "--pattern",
            "qwen*",
            "--effect",
            "deny",
        ];
        assert!(parse(&rule).is_ok());
        assert!(parse(&[&rule[..], &["--priority", "-5", "--subject", "ml"]].concat()).is_ok());
        let mut bad = rule.to_vec();
        bad[11] = "maybe";
        assert_eq!(parse(&bad).unwrap_err().exit_code(), 2);
        let mut bad = rule.to_vec();
        bad[3] = "team";
        assert_eq!(parse(&bad).unwrap_err().exit_code(), 2);
        assert!(parse(&["rule", "delete", "not-a-uuid"]).is_err());
    }

    #[test]
    fn audit_and_task_project_arguments_are_checked() {
        assert!(
            parse(&[
                "audit",
                "list",
                "--since",
                "2026-01-02T03:04:05Z",
                "--decision",
                "deny",
                "--actor-id",
                &Uuid::new_v4().to_string(),
                "-l",
                "200",
                "--offset",
                "50"
            ])
            .is_ok()
        );
        for bad in [
            &["audit", "list", "--since", "yesterday"][..],
            &["audit", "list", "--actor-id", "bob"],
            &["audit", "list", "-l", "0"],
            &["audit", "get", "e1"],
        ] {
            assert_eq!(parse(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
        assert!(parse(&["audit", "mcp", "--decision", "allow"]).is_ok());
        assert!(parse(&["task", "create", "hi", "--project-id", "vision"]).is_ok());
        assert!(parse(&["chat", "-m", "hi", "--project-id", "vision"]).is_ok());
    }

    #[test]
    fn help_documents_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit codes:"), "{help}");
        assert!(help.contains("cannot reach the gateway"), "{help}");
    }
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Model to chat with, as `GET /v1/models` lists it [default: cynodeai.pm, the Project
    /// Manager]
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Send this one message, print the answer and exit
    #[arg(short = 'm', long, value_name = "TEXT")]
    pub message: Option<String>,
    /// Chat in this project, by id or slug [default: the active project (`cynork project
    /// set`), else your default project]
    #[arg(long, value_name = "PROJECT")]
    pub project_id: Option<String>,
}
