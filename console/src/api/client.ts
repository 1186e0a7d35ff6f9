// useGatewayClient: THE single API layer of the console (spec: cli_console_acceptance.md §2).
//
// Same origin as the gateway (it serves the console), so no base URL to configure and no CORS.
// Auth is the gateway's cookie session: HttpOnly cookies the page never sees, plus a CSRF token
// that lives ONLY in this module's memory (never localStorage/sessionStorage) and goes with every
// POST/PUT/PATCH/DELETE. Every call carries a fresh X-Request-Id. A 401 triggers one refresh
// (POST /v1/auth/session/refresh) and one retry, else the app goes to /login?next=<page>.
// 403, 429 and 5xx/network failures become typed ApiErrors the pages explain.

import { reactive, readonly } from 'vue';
import type { ConsoleSession, OpenAiError, Problem, UserInfo } from './types';
import { DEFAULT_MAX_UPLOAD_BYTES, MAX_UPLOADS_PER_TASK } from './types';

// ---------------------------------------------------------------------------------------------
// Errors

export type ErrorKind =
  | 'unauthorized' // 401 after the refresh failed: the session is gone
  | 'forbidden' // 403: no role allows it (or the CSRF token was refused)
  | 'not_found' // 404
  | 'conflict' // 409
  | 'invalid' // 400/422: the request was refused as given
  | 'too_large' // 413
  | 'rate_limited' // 429: see retryAfter
  | 'unavailable' // 5xx: the gateway (or something behind it) failed
  | 'network' // no answer at all: the gateway is unreachable
  | 'aborted' // the caller aborted (Stop button, page left)
  | 'other';

export class ApiError extends Error {
  readonly kind: ErrorKind;
  /** HTTP status; 0 when no answer came. */
  readonly status: number;
  /** The problem's title (or the OpenAI error's code), in the API's words. */
  readonly title: string;
  /** The problem's detail (or the OpenAI error's message), in the API's words. */
  readonly detail: string;
  /** The OpenAI error code (`model_not_found`, ...) when the route answers that shape. */
  readonly code: string | undefined;
  /** Seconds to wait (429 Retry-After). */
  readonly retryAfter: number | undefined;
  /** The X-Request-Id of the failed call, to quote to an admin (the gateway logs it). */
  readonly requestId: string;
  readonly problemType: string | undefined;

  constructor(init: {
    kind: ErrorKind;
    status: number;
    title: string;
    detail: string;
    requestId: string;
    code?: string | undefined;
    retryAfter?: number | undefined;
    problemType?: string | undefined;
  }) {
    super(init.detail || init.title);
    this.name = 'ApiError';
    this.kind = init.kind;
    this.status = init.status;
    this.title = init.title;
    this.detail = init.detail;
    this.code = init.code;
    this.retryAfter = init.retryAfter;
    this.requestId = init.requestId;
    this.problemType = init.problemType;
  }

  /** What happened, in the API's words when it gave any. */
  get what(): string {
    if (this.detail && this.title && !this.detail.startsWith(this.title)) {
      return `${this.title}: ${this.detail}`;
    }
    return this.detail || this.title || `HTTP ${this.status}`;
  }

  /** What the person can do about it. */
  get hint(): string {
    switch (this.kind) {
      case 'unauthorized':
        return 'Your session has ended. Log in again.';
      case 'forbidden':
        return isCsrfRefusal(this)
          ? 'The page lost its security token. Reload the page and try again.'
          : 'None of your roles allows this. Ask an admin for a role that does (for example operator or admin of the project, or a system role).';
      case 'rate_limited':
        return this.retryAfter !== undefined
          ? `Too many requests. Try again in ${formatSeconds(this.retryAfter)}.`
          : 'Too many requests. Wait a moment and try again.';
      case 'unavailable':
        return 'The gateway answered with a server error. Try again shortly; if it persists, an admin can look up this request id in the orchestrator log.';
      case 'network':
        return 'Check that the orchestrator is running and that this computer can reach it, then retry.';
      case 'too_large':
        return 'Send less: a smaller file or fewer files.';
      case 'not_found':
        return 'It may have been removed, or it belongs to a project you cannot read.';
      case 'invalid':
        return 'Correct the input and try again.';
      case 'conflict':
        return 'Reload to see the current state, then try again.';
      default:
        return '';
    }
  }
}

export function isApiError(e: unknown): e is ApiError {
  return e instanceof ApiError;
}

function isCsrfRefusal(e: ApiError): boolean {
  return e.status === 403 && /csrf/i.test(`${e.title} ${e.detail}`);
}

/** Turns anything thrown into an ApiError (for pages that show one error type). */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof DOMException && e.name === 'AbortError') {
    return new ApiError({ kind: 'aborted', status: 0, title: 'Stopped', detail: 'Stopped.', requestId: '' });
  }
  const message = e instanceof Error ? e.message : String(e);
  return new ApiError({ kind: 'other', status: 0, title: 'Error', detail: message, requestId: '' });
}

export function formatSeconds(s: number): string {
  if (s < 60) return `${Math.max(1, Math.round(s))} s`;
  const m = Math.round(s / 60);
  return m < 60 ? `${m} min` : `${Math.round(m / 60)} h`;
}

function kindOf(status: number): ErrorKind {
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not_found';
  if (status === 409) return 'conflict';
  if (status === 413) return 'too_large';
  if (status === 429) return 'rate_limited';
  if (status === 400 || status === 422) return 'invalid';
  if (status >= 500) return 'unavailable';
  return 'other';
}

function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined;
  const secs = Number(value);
  if (Number.isFinite(secs)) return Math.max(0, secs);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, (at - Date.now()) / 1000);
}

/** Reads a failed response's body: problem+json, the OpenAI error shape, or plain text. */
export async function errorFromResponse(res: Response, requestId: string): Promise<ApiError> {
  let title = res.statusText || `HTTP ${res.status}`;
  let detail = '';
  let code: string | undefined;
  let problemType: string | undefined;
  const text = await res.text().catch(() => '');
  if (text) {
    try {
      const body = JSON.parse(text) as Partial<Problem & OpenAiError>;
      if (body.error && typeof body.error === 'object' && typeof body.error.message === 'string') {
        detail = body.error.message;
        code = body.error.code;
        title = body.error.code ?? title;
      } else {
        if (typeof body.title === 'string') title = body.title;
        if (typeof body.detail === 'string') detail = body.detail;
        if (typeof body.type === 'string') problemType = body.type;
      }
    } catch {
      detail = text.trim().slice(0, 500);
    }
  }
  return new ApiError({
    kind: kindOf(res.status),
    status: res.status,
    title,
    detail,
    code,
    problemType,
    retryAfter: parseRetryAfter(res.headers.get('Retry-After')),
    requestId: res.headers.get('X-Request-Id') ?? requestId,
  });
}

// ---------------------------------------------------------------------------------------------
// Global state: the session (no secrets in it) and the gateway's health for the banner.

interface AuthState {
  /** Whether GET /v1/auth/session has been answered (either way) since the page loaded. */
  checked: boolean;
  user: UserInfo | null;
  systemActions: string[];
  /** Epoch ms when the access cookie expires. */
  expiresAt: number;
}

const authState = reactive<AuthState>({ checked: false, user: null, systemActions: [], expiresAt: 0 });
/** The session as the UI reads it: who is logged in and what they may do system-wide. */
export const auth = readonly(authState);

/** The CSRF token of the cookie session: in memory only, by design. */
let csrfToken: string | null = null;

interface GatewayHealth {
  /** The last call got no answer or a 5xx. */
  down: boolean;
  message: string;
  hint: string;
  requestId: string;
  at: number;
}
const healthState = reactive<GatewayHealth>({ down: false, message: '', hint: '', requestId: '', at: 0 });
export const gatewayHealth = readonly(healthState);

function markDown(e: ApiError): void {
  healthState.down = true;
  healthState.message =
    e.kind === 'network'
      ? 'The gateway is unreachable.'
      : `The gateway failed (HTTP ${e.status}): ${e.what}`;
  healthState.hint = e.hint;
  healthState.requestId = e.requestId;
  healthState.at = Date.now();
}

function markUp(): void {
  if (healthState.down) {
    healthState.down = false;
    healthState.message = '';
    healthState.hint = '';
  }
}

/** Dismisses the banner (the next failure shows it again). */
export function dismissGatewayBanner(): void {
  healthState.down = false;
}

type AuthLostHandler = () => void;
let onAuthLostHandler: AuthLostHandler = () => {};
/** The app's reaction when the session is gone for good (main.ts: go to /login?next=...). */
export function onAuthLost(handler: AuthLostHandler): void {
  onAuthLostHandler = handler;
}

export function hasSystemAction(action: string): boolean {
  return authState.systemActions.includes(action);
}

// ---------------------------------------------------------------------------------------------
// Requests

export type QueryValue = string | number | boolean | null | undefined;
export type Query = Record<string, QueryValue>;

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  query?: Query;
  /** A JSON body. */
  json?: unknown;
  /** Any other body (FormData, Blob). */
  body?: BodyInit;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Default true: on a 401, refresh the session once and retry once. */
  refreshOnUnauthorized?: boolean;
  /** Default true: report 5xx/network failures in the global banner. */
  reportOutage?: boolean;
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const SESSION_PATH = '/v1/auth/session';
const REFRESH_PATH = '/v1/auth/session/refresh';

/** A v4 UUID; crypto.randomUUID needs a secure context, getRandomValues does not. */
export function requestId(): string {
  if (typeof crypto.randomUUID === 'function' && window.isSecureContext) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x40;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function buildUrl(path: string, query?: Query): string {
  if (!path.startsWith('/')) throw new Error(`API paths are same-origin and absolute: ${path}`);
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

/** Percent-encodes one path segment (`/v1/tasks/${seg(id)}`). */
export function seg(value: string): string {
  return encodeURIComponent(value);
}

async function rawFetch(path: string, opts: RequestOptions): Promise<{ res: Response; id: string }> {
  const method = opts.method ?? 'GET';
  const id = requestId();
  const headers: Record<string, string> = { Accept: 'application/json', 'X-Request-Id': id, ...opts.headers };
  let body: BodyInit | undefined = opts.body;
  if (opts.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.json);
  }
  if (MUTATING.has(method) && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  try {
    const init: RequestInit = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) init.body = body;
    if (opts.signal) init.signal = opts.signal;
    const res = await fetch(buildUrl(path, opts.query), init);
    return { res, id };
  } catch (e) {
    if ((e instanceof DOMException && e.name === 'AbortError') || opts.signal?.aborted) {
      throw new ApiError({ kind: 'aborted', status: 0, title: 'Stopped', detail: 'Stopped.', requestId: id });
    }
    const err = new ApiError({
      kind: 'network',
      status: 0,
      title: 'Gateway unreachable',
      detail: 'No answer from the gateway.',
      requestId: id,
    });
    if (opts.reportOutage !== false) markDown(err);
    throw err;
  }
}

/**
 * Sends one request and returns the successful Response (the body not yet read), or throws an
 * ApiError. Handles the 401 refresh-and-retry, the CSRF re-sync, and the outage banner.
 */
export async function send(path: string, opts: RequestOptions = {}): Promise<Response> {
  const sentAt = Date.now();
  let { res, id } = await rawFetch(path, opts);
  const isSessionRoute = path === SESSION_PATH || path === REFRESH_PATH;
  if (res.status === 401 && opts.refreshOnUnauthorized !== false && !isSessionRoute) {
    // A refresh rotates the session, so a request sent with the old cookie while it ran is
    // refused: retry it with the new cookie rather than rotating once more.
    const renewed = lastRefreshAt > sentAt || (await refreshSession());
    if (renewed) {
      ({ res, id } = await rawFetch(path, opts));
    }
    if (res.status === 401) {
      const err = await errorFromResponse(res, id);
      sessionLost();
      throw err;
    }
  }
  if (res.status === 403 && MUTATING.has(opts.method ?? 'GET') && !isSessionRoute) {
    // A CSRF refusal: the token may be stale (rotated by a refresh in another tab). Re-read the
    // session's token once and retry; a role refusal goes to the page as it is.
    const err = await errorFromResponse(res.clone(), id);
    if (isCsrfRefusal(err) && (await loadSession())) {
      ({ res, id } = await rawFetch(path, opts));
    }
  }
  if (!res.ok) {
    const err = await errorFromResponse(res, id);
    if (err.kind === 'unavailable' && opts.reportOutage !== false) markDown(err);
    else markUp();
    throw err;
  }
  markUp();
  return res;
}

/** `send` and read the JSON body (or `undefined` for 204). */
export async function request<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const res = await send(path, opts);
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  if (!text) return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError({
      kind: 'other',
      status: res.status,
      title: 'Unexpected answer',
      detail: `The gateway answered ${path} with something that is not JSON.`,
      requestId: res.headers.get('X-Request-Id') ?? '',
    });
  }
}

// ---------------------------------------------------------------------------------------------
// The cookie session

let refreshTimer: ReturnType<typeof setTimeout> | undefined;
let refreshing: Promise<boolean> | null = null;
/** When the last refresh succeeded (epoch ms). */
let lastRefreshAt = 0;

function applySession(s: ConsoleSession): void {
  csrfToken = s.csrf_token;
  authState.user = s.user;
  authState.systemActions = [...(s.system_actions ?? [])];
  authState.expiresAt = Date.now() + s.expires_in * 1000;
  authState.checked = true;
  scheduleRefresh(s.expires_in);
}

function clearSession(): void {
  csrfToken = null;
  authState.user = null;
  authState.systemActions = [];
  authState.expiresAt = 0;
  if (refreshTimer !== undefined) clearTimeout(refreshTimer);
  refreshTimer = undefined;
}

function sessionLost(): void {
  clearSession();
  authState.checked = true;
  onAuthLostHandler();
}

/** Refresh shortly before the access cookie runs out (a minute, or a fifth for short ones). */
function scheduleRefresh(expiresIn: number): void {
  if (refreshTimer !== undefined) clearTimeout(refreshTimer);
  const margin = Math.min(60, expiresIn * 0.2);
  const delayMs = Math.max(5, expiresIn - margin) * 1000;
  refreshTimer = setTimeout(() => {
    void refreshSession().then((ok) => {
      if (!ok) sessionLost();
    });
  }, delayMs);
}

/** One refresh at a time; true when the session was renewed. */
export function refreshSession(): Promise<boolean> {
  // The refresh needs the session's CSRF token; a page that never had one (just loaded) cannot.
  if (!csrfToken) return Promise.resolve(false);
  if (!refreshing) {
    refreshing = (async () => {
      try {
        const { res } = await rawFetch(REFRESH_PATH, { method: 'POST', reportOutage: false });
        if (!res.ok) return false;
        applySession((await res.json()) as ConsoleSession);
        lastRefreshAt = Date.now();
        return true;
      } catch {
        return false;
      } finally {
        setTimeout(() => {
          refreshing = null;
        }, 0);
      }
    })();
  }
  return refreshing;
}

/**
 * Asks the gateway who is logged in (GET /v1/auth/session). True with a session; false on 401.
 * Network and 5xx failures throw (the shell shows the banner; the page says what to try).
 */
export async function loadSession(): Promise<boolean> {
  const { res, id } = await rawFetch(SESSION_PATH, {});
  if (res.status === 401) {
    // The access cookie may just have run out: the refresh cookie can renew it.
    if (await refreshSession()) return true;
    clearSession();
    authState.checked = true;
    return false;
  }
  if (!res.ok) {
    const err = await errorFromResponse(res, id);
    if (err.kind === 'unavailable') markDown(err);
    throw err;
  }
  markUp();
  const session = (await res.json()) as ConsoleSession;
  applySession(session);
  // Reloaded after the access cookie expired: the gateway named the session from the refresh
  // cookie (expires_in 0); renew it now.
  if (session.expires_in === 0 && !(await refreshSession())) {
    clearSession();
    authState.checked = true;
    return false;
  }
  return true;
}

/** POST /v1/auth/session: log in; errors come back in the API's words. */
export async function login(handle: string, password: string): Promise<void> {
  const s = await request<ConsoleSession>(SESSION_PATH, {
    method: 'POST',
    json: { handle, password },
    refreshOnUnauthorized: false,
  });
  applySession(s);
}

/** DELETE /v1/auth/session: revoke the session server-side and forget it here. */
export async function logout(): Promise<void> {
  try {
    await send(SESSION_PATH, { method: 'DELETE', refreshOnUnauthorized: false });
  } finally {
    clearSession();
    authState.checked = true;
  }
}

// ---------------------------------------------------------------------------------------------
// Pagination: the gateway pages with `limit` plus either `cursor` (from `next_cursor`) or
// `offset` (from `next_offset`).

export interface PageToken {
  param: 'cursor' | 'offset';
  value: string;
}

export interface Page<T> {
  items: T[];
  next: PageToken | null;
}

interface PagedBody {
  next_cursor?: string | null;
  next_offset?: number | null;
}

export function nextToken(body: PagedBody): PageToken | null {
  if (body.next_cursor) return { param: 'cursor', value: body.next_cursor };
  if (body.next_offset !== undefined && body.next_offset !== null) {
    return { param: 'offset', value: String(body.next_offset) };
  }
  return null;
}

/** One page of a list route; `key` names the array in the body (`tasks`, `threads`, ...). */
export async function fetchPage<T>(
  path: string,
  key: string,
  query: Query = {},
  token: PageToken | null = null,
  opts: RequestOptions = {},
): Promise<Page<T>> {
  const q: Query = { ...query };
  if (token) q[token.param] = token.value;
  const body = await request<Record<string, unknown> & PagedBody>(path, { ...opts, query: q });
  const items = (body[key] as T[] | undefined) ?? [];
  return { items, next: nextToken(body) };
}

/** Every page of a list route, in order, up to `maxItems`. */
export async function* pages<T>(
  path: string,
  key: string,
  query: Query = {},
  opts: RequestOptions = {},
): AsyncGenerator<T[], void, void> {
  let token: PageToken | null = null;
  do {
    const page: Page<T> = await fetchPage<T>(path, key, query, token, opts);
    yield page.items;
    token = page.next;
  } while (token);
}

export async function fetchAll<T>(path: string, key: string, query: Query = {}, maxItems = 10_000): Promise<T[]> {
  const out: T[] = [];
  for await (const items of pages<T>(path, key, query)) {
    out.push(...items);
    if (out.length >= maxItems) break;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Server-sent events over fetch (so they carry X-Request-Id and get the 401 handling too).

export interface SseEvent {
  event: string;
  data: string;
}

/** Splits an SSE byte stream into events whatever the chunking; comments are skipped. */
export class SseDecoder {
  private buf = '';
  private readonly decoder = new TextDecoder();

  push(chunk: Uint8Array): SseEvent[] {
    this.buf += this.decoder.decode(chunk, { stream: true });
    return this.drain();
  }

  end(): SseEvent[] {
    this.buf += this.decoder.decode();
    const events = this.drain();
    if (this.buf.trim()) {
      const last = parseEvent(this.buf);
      this.buf = '';
      if (last) events.push(last);
    }
    return events;
  }

  private drain(): SseEvent[] {
    const events: SseEvent[] = [];
    for (;;) {
      const m = /\r?\n\r?\n/.exec(this.buf);
      if (!m) break;
      const raw = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      const ev = parseEvent(raw);
      if (ev) events.push(ev);
    }
    return events;
  }
}

function parseEvent(raw: string): SseEvent | null {
  let name: string | null = null;
  const data: string[] = [];
  for (const line of raw.split(/\r?\n/)) {
    if (line.startsWith(':') || line === '') continue;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') name = value;
    else if (field === 'data') data.push(value);
  }
  if (name === null && data.length === 0) return null;
  return { event: name ?? 'message', data: data.join('\n') };
}

/**
 * Opens an SSE stream and calls `onEvent` for each event until the stream ends or `signal`
 * aborts. Resolves when the server closes the stream.
 */
export async function streamEvents(
  path: string,
  opts: RequestOptions & { onResponse?: (res: Response) => void },
  onEvent: (ev: SseEvent) => void,
): Promise<void> {
  const { onResponse, ...rest } = opts;
  const res = await send(path, {
    ...rest,
    headers: { Accept: 'text/event-stream', ...rest.headers },
  });
  onResponse?.(res);
  if (!res.body) return;
  const reader = res.body.getReader();
  const decoder = new SseDecoder();
  try {
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (e) {
        if (opts.signal?.aborted) {
          throw new ApiError({ kind: 'aborted', status: 0, title: 'Stopped', detail: 'Stopped.', requestId: '' });
        }
        throw new ApiError({
          kind: 'network',
          status: 0,
          title: 'Stream interrupted',
          detail: `The stream ended early: ${e instanceof Error ? e.message : String(e)}`,
          requestId: res.headers.get('X-Request-Id') ?? '',
        });
      }
      if (chunk.done) break;
      for (const ev of decoder.push(chunk.value)) onEvent(ev);
    }
    for (const ev of decoder.end()) onEvent(ev);
  } finally {
    reader.cancel().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// Limits published in /openapi.json

export interface UploadLimits {
  /** Largest file, bytes (the multipart `files` items' maxLength, or `x-max-upload-bytes`). */
  maxFileBytes: number;
  /** Most files with one task. */
  maxFiles: number;
  /** The gateway's whole request body limit, when published (`info.x-max-request-body-bytes`). */
  maxRequestBytes: number | undefined;
  /** Whether the numbers came from /openapi.json (false: the built-in defaults). */
  published: boolean;
}

let uploadLimitsPromise: Promise<UploadLimits> | null = null;

type Json = Record<string, unknown>;

function obj(v: unknown): Json | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined;
}

/** Follows a local `$ref` (`#/components/schemas/X`). */
function deref(doc: Json, v: unknown): Json | undefined {
  const o = obj(v);
  const ref = o?.['$ref'];
  if (typeof ref !== 'string' || !ref.startsWith('#/')) return o;
  let cur: unknown = doc;
  for (const part of ref.slice(2).split('/')) cur = obj(cur)?.[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  return obj(cur);
}

function num(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

/** Reads the upload limits from an OpenAPI document (exported for tests). */
export function uploadLimitsFrom(doc: unknown): UploadLimits {
  const root = obj(doc) ?? {};
  const post = obj(obj(obj(root.paths)?.['/v1/tasks'])?.post);
  const content = obj(obj(deref(root, post?.requestBody))?.content);
  const schema = deref(root, obj(content?.['multipart/form-data'])?.schema);
  const files = deref(root, obj(schema?.properties)?.files);
  const item = deref(root, files?.items);
  const maxFileBytes =
    num(post?.['x-max-upload-bytes']) ?? num(item?.maxLength) ?? num(obj(root.info)?.['x-max-upload-bytes']);
  const maxFiles = num(files?.maxItems);
  return {
    maxFileBytes: maxFileBytes ?? DEFAULT_MAX_UPLOAD_BYTES,
    maxFiles: maxFiles ?? MAX_UPLOADS_PER_TASK,
    maxRequestBytes: num(obj(root.info)?.['x-max-request-body-bytes']),
    published: maxFileBytes !== undefined,
  };
}

/** The upload limits of `POST /v1/tasks`, from /openapi.json (read once). */
export function uploadLimits(): Promise<UploadLimits> {
  if (!uploadLimitsPromise) {
    uploadLimitsPromise = request<unknown>('/openapi.json', { reportOutage: false })
      .then(uploadLimitsFrom)
      .catch(() => {
        uploadLimitsPromise = null;
        return uploadLimitsFrom(null);
      });
  }
  return uploadLimitsPromise;
}

// ---------------------------------------------------------------------------------------------

const client = {
  auth,
  gatewayHealth,
  send,
  request,
  get: <T>(path: string, query?: Query, opts: RequestOptions = {}) => request<T>(path, { ...opts, query }),
  post: <T>(path: string, json?: unknown, opts: RequestOptions = {}) =>
    request<T>(path, { ...opts, method: 'POST', json }),
  put: <T>(path: string, json?: unknown, opts: RequestOptions = {}) =>
    request<T>(path, { ...opts, method: 'PUT', json }),
  patch: <T>(path: string, json?: unknown, opts: RequestOptions = {}) =>
    request<T>(path, { ...opts, method: 'PATCH', json }),
  del: <T>(path: string, opts: RequestOptions = {}) => request<T>(path, { ...opts, method: 'DELETE' }),
  fetchPage,
  pages,
  fetchAll,
  streamEvents,
  uploadLimits,
  login,
  logout,
  loadSession,
  refreshSession,
  hasSystemAction,
};

export type GatewayClient = typeof client;

/** The composable every page uses: one shared client, one session, one health state. */
export function useGatewayClient(): GatewayClient {
  return client;
}
