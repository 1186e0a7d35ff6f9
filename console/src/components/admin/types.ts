// Wire types of the account and admin pages, mirrored from `contracts/src/user/{teams,usage,
// nodes}.rs`, `contracts/src/preferences.rs`, `contracts/src/mcp.rs` and `contracts/src/
// telemetry.rs`. The shared `api/types.ts` holds the API keys' and nodes' basic shapes; this file
// adds what only these pages read.

import type { NodeInfo, Role, Timestamp, Uuid } from '../../api/types';

// ---------------------------------------------------------------------------------------------
// Usage (`GET /v1/users/me/usage`)

export interface UsageTotals {
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}
export interface ModelUsage extends UsageTotals {
  model: string;
}
/** `api_key_id` absent: calls made with a login session. */
export interface ApiKeyUsage extends UsageTotals {
  api_key_id?: Uuid;
  name?: string;
}
export interface DayUsage extends UsageTotals {
  /** `YYYY-MM-DD`, UTC. */
  day: string;
}
export interface UsageReport {
  since?: Timestamp;
  until?: Timestamp;
  total: UsageTotals;
  by_model: ModelUsage[];
  by_api_key: ApiKeyUsage[];
  by_day: DayUsage[];
}

/** contracts `MAX_API_KEY_NAME_CHARS`, `MAX_API_KEY_DAYS`, `MAX_ACTIVE_API_KEYS`. */
export const MAX_API_KEY_NAME_CHARS = 128;
export const MAX_API_KEY_DAYS = 3650;
export const MAX_ACTIVE_API_KEYS = 50;

// ---------------------------------------------------------------------------------------------
// Nodes: the telemetry snapshot the orchestrator pulled (contracts `NodeTelemetry`).

export interface NodeTelemetry {
  pulled_at: Timestamp;
  info: {
    version: number;
    node_slug?: string | null;
    build: { build_version: string };
    platform: { os: string; arch: string; kernel_version: string };
    last_capability_report?: unknown;
  };
  stats: {
    version: number;
    captured_at: Timestamp;
    cpu: { cores: number; load1: number; load5: number; load15: number };
    memory: { total_mb: number; used_mb: number; free_mb: number };
    disk: { state_dir_free_mb: number; state_dir_total_mb: number };
    container_runtime: { runtime: string; version?: string | null };
  };
}

/** The telemetry of a node, when it has the expected shape. */
export function telemetryOf(node: NodeInfo): NodeTelemetry | null {
  const t = node.telemetry as Partial<NodeTelemetry> | undefined;
  if (!t || typeof t !== 'object' || !t.info || !t.stats) return null;
  return t as NodeTelemetry;
}

/** contracts `MAX_DRAIN_DEADLINE_SECONDS` (a week). */
export const MAX_DRAIN_DEADLINE_SECONDS = 7 * 24 * 3600;

// ---------------------------------------------------------------------------------------------
// Teams (`contracts/src/user/teams.rs`)

export const MIN_PASSWORD_CHARS = 12;
export const MAX_HANDLE_CHARS = 64;
/** Handles and slugs: lowercase letters, digits, `.`, `_`, `-`; starting with a letter or digit. */
export const HANDLE_PATTERN = '^[a-z0-9][a-z0-9._\\-]{0,63}$';
export const HANDLE_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** Default and largest page of the admin lists. */
export const ADMIN_PAGE = 50;

export interface UserAccount {
  id: Uuid;
  handle: string;
  display_name?: string;
  email?: string;
  is_active: boolean;
  groups: string[];
  created_at: Timestamp;
  updated_at: Timestamp;
}
export interface UserList {
  users: UserAccount[];
  next_offset?: number;
}
export interface CreateUserRequest {
  handle: string;
  display_name?: string;
  email?: string;
  password?: string;
}
export interface PasswordSetToken {
  token: string;
  expires_at: Timestamp;
}
export interface CreatedUser {
  user: UserAccount;
  set_password?: PasswordSetToken;
}
export interface PasswordReset {
  set_password?: PasswordSetToken;
}

export interface Group {
  id: Uuid;
  slug: string;
  display_name: string;
  is_active: boolean;
  member_count: number;
  created_at: Timestamp;
  updated_at: Timestamp;
}
export interface GroupList {
  groups: Group[];
}
export interface GroupMember {
  user_id: Uuid;
  handle: string;
  added_at: Timestamp;
}
export interface GroupMembers {
  members: GroupMember[];
}

export type SubjectType = 'user' | 'group';
export type BindingScope = 'system' | 'project';
export interface RoleBinding {
  id: Uuid;
  role: Role;
  subject_type: SubjectType;
  subject_id: Uuid;
  subject_name: string;
  scope_type: BindingScope;
  scope_id?: Uuid;
  created_at: Timestamp;
}
export interface RoleBindingList {
  bindings: RoleBinding[];
}
export interface GrantRequest {
  role: Role;
  subject_type: SubjectType;
  subject: string;
  scope_type: BindingScope;
  scope_id?: string;
}
export interface RoleInfo {
  name: Role;
  description: string;
  actions: string[];
  own_actions: string[];
}
export interface RoleList {
  roles: RoleInfo[];
}
/** Weakest first; `owner` exists only at project scope. */
export const ROLES: Role[] = ['viewer', 'member', 'operator', 'admin', 'owner'];

export type Effect = 'allow' | 'deny';
export interface AuditEvent {
  id: Uuid;
  created_at: Timestamp;
  actor_type: string;
  actor_id?: Uuid;
  actor_handle?: string;
  action: string;
  resource_type: string;
  resource_id: string;
  decision: Effect;
  reason?: string;
  task_id?: Uuid;
}
export interface AuditPage {
  events: AuditEvent[];
  next_offset?: number;
}

// ---------------------------------------------------------------------------------------------
// MCP audit (`contracts/src/mcp.rs`)

export interface McpAuditEntry {
  id: Uuid;
  created_at: Timestamp;
  task_id?: Uuid | null;
  project_id?: Uuid | null;
  run_id?: Uuid | null;
  job_id?: Uuid | null;
  /** `pm`, `pa`, `sandbox`, or `anonymous`. */
  subject_type: string;
  subject_id?: string | null;
  user_id?: Uuid | null;
  tool_name: string;
  decision: Effect;
  status: 'success' | 'error';
  duration_ms: number;
  error_type?: string | null;
}
export interface McpAuditPage {
  entries: McpAuditEntry[];
  next_cursor?: string | null;
}

// ---------------------------------------------------------------------------------------------
// Preferences (`contracts/src/preferences.rs`)

/** Precedence, lowest first. */
export type PrefScope = 'system' | 'group' | 'user' | 'project' | 'task';
export const PREF_SCOPES: PrefScope[] = ['system', 'group', 'user', 'project', 'task'];
export type ValueType = 'string' | 'number' | 'boolean' | 'object' | 'array';
export const VALUE_TYPES: ValueType[] = ['string', 'number', 'boolean', 'object', 'array'];
export const MAX_PREF_KEY_CHARS = 256;
export const PREF_KEY_RE = /^[a-z0-9_.-]{1,256}$/;
export const MAX_PREF_VALUE_BYTES = 64 * 1024;
export const MAX_REASON_CHARS = 1024;
export const PREF_PAGE = 100;

export interface PreferenceEntry {
  id: Uuid;
  scope_type: PrefScope;
  scope_id?: Uuid;
  key: string;
  value: unknown;
  value_type: ValueType;
  version: number;
  updated_at: Timestamp;
  updated_by?: Uuid;
}
export interface PreferencePage {
  entries: PreferenceEntry[];
  next_cursor?: string;
}
export interface PreferenceSource {
  key: string;
  scope_type: PrefScope;
  scope_id?: Uuid;
}
export interface EffectivePreferences {
  effective: Record<string, unknown>;
  sources: PreferenceSource[];
}
export interface SetPreferenceRequest {
  value: unknown;
  value_type?: ValueType;
  expected_version?: number;
  reason?: string;
}

/** The JSON type of a value (`null` has none). */
export function valueTypeOf(v: unknown): ValueType | null {
  if (v === null || v === undefined) return null;
  if (Array.isArray(v)) return 'array';
  switch (typeof v) {
    case 'string':
      return 'string';
    case 'number':
      return 'number';
    case 'boolean':
      return 'boolean';
    case 'object':
      return 'object';
    default:
      return null;
  }
}
