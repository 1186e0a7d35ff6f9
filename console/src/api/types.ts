// Wire types of the user gateway, mirrored from `contracts/src/user/*.rs` (the API's source of
// truth; the running gateway's /openapi.json lists every route). Only what the console reads.

export type Uuid = string;
/** RFC 3339 timestamp. */
export type Timestamp = string;

/** RFC 9457 problem details: the error body of every REST route. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  instance?: string;
}

/** The error body of the OpenAI-compatible routes (`/v1/chat/completions`, `/v1/models`). */
export interface OpenAiError {
  error: { message: string; type?: string; param?: string | null; code?: string };
}

export interface UserInfo {
  id: Uuid;
  handle: string;
  email?: string;
  is_active: boolean;
}

/** `POST|GET /v1/auth/session`, `POST /v1/auth/session/refresh`. */
export interface ConsoleSession {
  user: UserInfo;
  csrf_token: string;
  /** Seconds until the access cookie expires. */
  expires_in: number;
  /** Actions the user holds at system scope (`node.read`, `user.manage`, ...). */
  system_actions: string[];
}

/** `POST /v1/users/me/password` (204). */
export interface ChangePasswordRequest {
  current_password: string;
  new_password: string;
}
export const MIN_PASSWORD_CHARS = 12;

export type InputMode = 'prompt' | 'script' | 'commands';
export type TaskStatus = 'queued' | 'running' | 'completed' | 'failed' | 'canceled' | 'superseded';
export const TASK_STATUSES: TaskStatus[] = [
  'queued',
  'running',
  'completed',
  'failed',
  'canceled',
  'superseded',
];
export function isTerminal(status: TaskStatus): boolean {
  return status !== 'queued' && status !== 'running';
}

export interface JobRequirements {
  labels?: string[];
  model?: string;
  min_memory_mb?: number;
  min_cpu_cores?: number;
  gpu?: boolean;
}

/** `POST /v1/tasks` (JSON, or the `task` part of multipart/form-data). */
export interface CreateTaskRequest {
  prompt: string;
  input_mode?: InputMode;
  task_name?: string;
  project_id?: Uuid;
  attachments?: string[];
  use_inference?: boolean;
  use_mcp?: boolean;
  requirements?: JobRequirements;
}
/** The multipart part holding the `CreateTaskRequest` JSON (contracts `artifacts::TASK_PART`). */
export const TASK_PART = 'task';
/** Fallback when /openapi.json publishes no limit (contracts `artifacts::MAX_ARTIFACT_BYTES`). */
export const DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024;
/** Most files uploaded with one task (contracts `artifacts::MAX_UPLOADS_PER_TASK`). */
export const MAX_UPLOADS_PER_TASK = 16;

export interface Task {
  id: Uuid;
  task_id: Uuid;
  status: TaskStatus;
  task_name?: string;
  prompt?: string;
  input_mode: InputMode;
  summary?: string;
  created_at: Timestamp;
  updated_at: Timestamp;
  attachments?: string[];
  requirements?: JobRequirements;
  wait_reason?: string;
  project_id?: Uuid;
  creator?: string;
}

export interface TaskList {
  tasks: Task[];
  next_offset?: number;
  next_cursor?: string;
}

export interface CancelResponse {
  task_id: Uuid;
  canceled: boolean;
}

export type JobStatus = 'queued' | 'running' | 'completed' | 'failed' | 'canceled';

export interface JobSetback {
  at: Timestamp;
  node?: string;
  why: string;
}

/** The worker's RunJobResponse, or `{version, status: "failed", error}` when dispatch failed. */
export interface RunResult {
  version?: number;
  status?: string;
  exit_code?: number | null;
  stdout?: string;
  stderr?: string;
  error?: string;
  truncated?: { stdout?: boolean; stderr?: boolean };
  started_at?: Timestamp;
  ended_at?: Timestamp;
  [key: string]: unknown;
}

export interface JobResult {
  id: Uuid;
  status: JobStatus;
  attempts?: number;
  setbacks?: JobSetback[];
  result?: RunResult;
  started_at?: Timestamp;
  ended_at?: Timestamp;
}

/** `GET /v1/tasks/{id}/result`. */
export interface TaskResult {
  task_id: Uuid;
  status: TaskStatus;
  jobs: JobResult[];
  answer?: string;
}

/** `GET /v1/tasks/{id}/steps`. */
export interface TaskStep {
  index: number;
  model: string;
  node_slug: string;
  request: unknown;
  response?: string;
  decision?: { action?: string; answer?: string; commands?: string[]; why?: string; [k: string]: unknown };
  job_id?: Uuid;
  output?: { job_status?: string; exit_code?: number | null; stdout?: string; stderr?: string };
  error?: string;
  prompt_tokens: number;
  completion_tokens: number;
  model_ms: number;
  job_ms?: number;
  created_at: Timestamp;
  updated_at: Timestamp;
}
export interface TaskSteps {
  task_id: Uuid;
  steps: TaskStep[];
}

export type OutputStream = 'stdout' | 'stderr';
/** `line` event of `GET /v1/tasks/{id}/logs?follow=true`. */
export interface TaskLogLine {
  job_id: Uuid;
  stream: OutputStream;
  line: string;
}
/** `end` event of the same stream. */
export interface TaskLogEnd {
  task_id: Uuid;
  status: TaskStatus;
}
/** `GET /v1/tasks/{id}/logs` without follow. */
export interface TaskLogs {
  task_id: Uuid;
  stdout: string;
  stderr: string;
}

/** `GET /v1/tasks/{id}/artifacts`. */
export interface Artifact {
  artifact_id: Uuid;
  task_id: Uuid;
  path: string;
  content_type?: string;
  size_bytes?: number;
  checksum_sha256?: string;
  created_at: Timestamp;
  updated_at: Timestamp;
}
export interface ArtifactList {
  task_id: Uuid;
  artifacts: Artifact[];
}

/** The model that answers through the Project Manager; the default chat model. */
export const PM_MODEL = 'cynodeai.pm';
export interface ModelObject {
  id: string;
  object: string;
  created: number;
  owned_by: string;
}
export interface ModelList {
  object: string;
  data: ModelObject[];
}

export interface ChatMessageIn {
  role: string;
  content: string;
}
export interface ChatThread {
  id: Uuid;
  creator?: string;
  project_id?: Uuid;
  title?: string;
  message_count: number;
  created_at: Timestamp;
  updated_at: Timestamp;
}
export interface ChatThreadList {
  threads: ChatThread[];
  next_offset?: number;
}
export interface ChatMessage {
  id: Uuid;
  role: string;
  content: string;
  model?: string;
  created_at: Timestamp;
}
export interface ChatMessageList {
  thread_id: Uuid;
  messages: ChatMessage[];
  next_offset?: number;
}
export interface Usage {
  prompt_tokens?: number;
  completion_tokens?: number;
  total_tokens?: number;
}
/** One `chat.completion.chunk` of a streamed completion. */
export interface ChatChunk {
  id?: string;
  model?: string;
  choices?: { index?: number; delta?: { role?: string; content?: string | null }; finish_reason?: string | null }[];
  usage?: Usage | null;
}

export type Role = 'viewer' | 'member' | 'operator' | 'admin' | 'owner';
export interface Project {
  id: Uuid;
  slug: string;
  display_name: string;
  description?: string;
  is_active: boolean;
  is_personal: boolean;
  my_roles: Role[];
  created_at: Timestamp;
  updated_at: Timestamp;
}
export interface ProjectList {
  projects: Project[];
}

// Account and admin pages (filled in by their pages' author; kept here so the API layer is one).
export type ApiKeyStatus = 'active' | 'expired' | 'revoked';
export interface ApiKeyInfo {
  id: Uuid;
  name: string;
  prefix: string;
  last_four: string;
  status: ApiKeyStatus;
  created_at: Timestamp;
  expires_at?: Timestamp;
  last_used_at?: Timestamp;
  revoked_at?: Timestamp;
}
export interface ApiKeyList {
  api_keys: ApiKeyInfo[];
}
export interface CreatedApiKey {
  id: Uuid;
  name: string;
  key: string;
  prefix: string;
  last_four: string;
  created_at: Timestamp;
  expires_at?: Timestamp;
}

export type NodeState = 'active' | 'drained' | 'inactive';
export interface NodeInfo {
  node_slug: string;
  state: NodeState;
  ready: boolean;
  drain_deadline?: Timestamp;
  labels: string[];
  models: string[];
  max_concurrency?: number;
  running_jobs: number;
  cpu_cores: number;
  memory_mb: number;
  gpu: boolean;
  config_version: string;
  config_ack_status?: string;
  last_seen_at?: Timestamp;
  telemetry?: Record<string, unknown>;
}
export interface NodeList {
  nodes: NodeInfo[];
}
