// Type declarations for stabilizer.js, the browser client of asgi_ws_stabilizer.

export type SocketState = "connecting" | "open" | "reconnecting" | "closed";
export type CloseAction = "stop" | "reconnect" | "reconnect-slow" | "reconnect-hint";
export type OutgoingData = string | ArrayBufferLike | ArrayBufferView | Blob;
/** Text frames arrive as strings, binary frames as ArrayBuffer (binaryType "arraybuffer"). */
export type IncomingData = string | ArrayBuffer;

/** Anything constructible like the browser WebSocket (e.g. a fake in tests). */
export interface WebSocketLike {
  readonly readyState: number;
  binaryType: string;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: { data: any }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: any) => void) | null;
  send(data: any): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface StabilizedSocketOptions {
  /** Opt in to sessions and resumption (`_stabilizer=1`). Default true. */
  resume?: boolean;
  /** Backoff base in ms. Default 500. */
  minDelay?: number;
  /** Backoff cap in ms. Default 20000. */
  maxDelay?: number;
  /** Floor in ms of the delay after close code 4429 (rate limited). Default 5000. */
  rateLimitDelay?: number;
  /** A connection open this long (ms) resets the backoff attempt count. Default 5000. */
  stableAfter?: number;
  /** Give up on a socket that is not open (and, when opted in, has no session frame) after this many ms. Default 10000. */
  connectTimeout?: number;
  /** Offline buffer bound in messages (0 disables buffering). Default 100. */
  maxBufferedMessages?: number;
  /** Offline buffer bound in bytes (UTF-8 size for text). Default 1048576. */
  maxBufferedBytes?: number;
  /** The server's heartbeat text, answered and never surfaced; null disables. Default "ping". */
  pingMessage?: string | null;
  /** The answer to the heartbeat. Default "pong". */
  pongMessage?: string;
  protocols?: string | string[];
  /** Default globalThis.WebSocket. */
  WebSocket?: WebSocketConstructor;
  /** Default Math.random. */
  random?: () => number;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (id: any) => void;
  /** Source of `online`/`offline` events. Default globalThis.window; null disables. */
  window?: EventTarget | null;
  /** Source of `visibilitychange` events. Default globalThis.document; null disables. */
  document?: (EventTarget & { readonly visibilityState: string }) | null;
}

export interface StabilizedSocketEventDetails {
  open: { sessionId: string | null; resumed: boolean };
  message: { data: IncomingData };
  close: { code: number; reason: string; willReconnect: boolean };
  reconnecting: { attempt: number; delay: number; code: number };
  resumed: { replayed: number; missed: number; sessionId: string | null };
  drop: { data: OutgoingData; dropped: number };
}
export type StabilizedSocketEventName = keyof StabilizedSocketEventDetails;

export class StabilizedSocket extends EventTarget {
  constructor(url: string | URL, options?: StabilizedSocketOptions);
  readonly state: SocketState;
  readonly sessionId: string | null;
  readonly token: string | null;
  /** Data messages received in the current session. */
  readonly received: number;
  /** Outgoing messages dropped by the offline buffer. */
  readonly dropped: number;
  /** Outgoing messages waiting in the offline buffer. */
  readonly buffered: number;
  /** Returns true if the message was sent or queued. */
  send(data: OutgoingData): boolean;
  close(code?: number, reason?: string): void;
  on<K extends StabilizedSocketEventName>(
    name: K,
    fn: (detail: StabilizedSocketEventDetails[K], event: CustomEvent<StabilizedSocketEventDetails[K]>) => void,
  ): () => void;
  addEventListener<K extends StabilizedSocketEventName>(
    type: K,
    listener: (event: CustomEvent<StabilizedSocketEventDetails[K]>) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends StabilizedSocketEventName>(
    type: K,
    listener: (event: CustomEvent<StabilizedSocketEventDetails[K]>) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}

export function backoffDelay(
  attempt: number,
  options?: { minDelay?: number; maxDelay?: number; random?: () => number },
): number;
export function closeAction(code: number): CloseAction;
export function isControlFrame(data: unknown): boolean;
export function withResumeParams(url: string | URL, resume?: { token?: string | null; seq?: number }): string;

export class OfflineBuffer {
  constructor(limits?: { maxMessages?: number; maxBytes?: number });
  maxMessages: number;
  maxBytes: number;
  readonly length: number;
  readonly bytes: number;
  push(data: OutgoingData): { queued: boolean; dropped: OutgoingData[] };
  shift(): OutgoingData | undefined;
  clear(): void;
}
