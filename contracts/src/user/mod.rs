//! User gateway payloads (`orchestrator.md` §4), one file per concern; every type is re-exported
//! here, so that its path is `user::X` whichever file holds it.

mod api_keys;
mod auth;
mod chat;
mod jobs;
mod nodes;
mod steps;
mod task_logs;
mod tasks;
mod teams;
mod usage;

pub use api_keys::{
    API_KEY_PREFIX, ApiKeyInfo, ApiKeyList, ApiKeyStatus, CreateApiKeyRequest, CreatedApiKey,
    MAX_ACTIVE_API_KEYS, MAX_API_KEY_DAYS, MAX_API_KEY_NAME_CHARS,
};
pub use auth::{
    ConsoleSession, LoginRequest, LogoutRequest, RefreshRequest, TokenResponse, UserInfo,
};
pub use chat::{
    ChatCompletion, ChatCompletionRequest, ChatMessage, ChatMessageIn, ChatMessageList,
    ChatStreamOptions, ChatThread, ChatThreadList, CreateThreadRequest, ModelList, ModelObject,
    OpenAiError, OpenAiErrorBody, PM_MODEL, PageQuery, ThreadListQuery,
};
pub use jobs::{JobFailure, JobResult, JobSetback, JobStatus, TaskResult};
pub use nodes::{
    DrainRequest, MAX_DRAIN_DEADLINE_SECONDS, NodeInfo, NodeList, NodeState, NodeTelemetry,
};
pub use steps::{TaskStep, TaskSteps};
pub use task_logs::{TaskLogStream, TaskLogs, TaskLogsQuery};
pub use tasks::{
    CancelResponse, CreateTaskRequest, InputMode, JobRequirements, MAX_ATTACHMENT_PATH_CHARS,
    MAX_ATTACHMENTS, MAX_LABEL_CHARS, MAX_MODEL_NAME_CHARS, MAX_REQUIRED_LABELS,
    MAX_TASK_NAME_CHARS, Task, TaskList, TaskStatus,
};
pub use teams::{
    AccessRule, AccessRuleList, AddMemberRequest, AuditEvent, AuditPage, AuditQuery,
    ChangePasswordRequest, CreateAccessRuleRequest, CreateGroupRequest, CreateProjectRequest,
    CreateUserRequest, CreatedUser, DEFAULT_PAGE, Effect, GrantRequest, Group, GroupList,
    GroupMember, GroupMembers, MAX_HANDLE_CHARS, MAX_PAGE, MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS,
    PasswordReset, PasswordSetToken, Project, ProjectList, ProjectListQuery, ResetPasswordRequest,
    Role, RoleBinding, RoleBindingList, RoleBindingQuery, RoleInfo, RoleList, ScopeType,
    SetPasswordRequest, SubjectType, UpdateGroupRequest, UpdateProjectRequest, UserAccount,
    UserList, UserListQuery,
};
pub use usage::{ApiKeyUsage, DayUsage, ModelUsage, UsageQuery, UsageReport, UsageTotals};
