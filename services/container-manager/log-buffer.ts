import fs from "node:fs";
import type { LogLine, LogStream } from "./backends/replica-backend.js";

/** The last `capacity` lines of a replica's output, oldest first. */
export class LogBuffer {
  private readonly lines: LogLine[] = [];
  private next = 0;

  constructor(
    readonly capacity: number,
    private readonly now: () => number = Date.now,
  ) {
    if (capacity < 1) throw new RangeError("a log buffer holds at least one line");
  }

  push(stream: LogStream, text: string, timeMs = this.now()): LogLine {
    const line = { timeMs, stream, text };
    if (this.lines.length < this.capacity) this.lines.push(line);
    else this.lines[this.next] = line;
    this.next = (this.next + 1) % this.capacity;
    return line;
  }

  tail(count: number): LogLine[] {
    const ordered = this.lines.length < this.capacity ? this.lines : [...this.lines.slice(this.next), ...this.lines.slice(0, this.next)];
    return count <= 0 ? [] : ordered.slice(-count);
  }
}

const LOG_STREAMS: ReadonlySet<string> = new Set<LogStream>(["stdout", "stderr", "manager"]);

/**
 * The last `count` lines of a log file written by RotatingLogFile (each
 * `<ISO time> <stream> <text>`, as formatLogLine writes them), read back as
 * lines; other lines are skipped. Reads at most the file's last `maxBytes`.
 */
export function readLogFileTail(file: string, count: number, maxBytes = 1024 * 1024): LogLine[] {
  let text: string;
  try {
    const fd = fs.openSync(file, "r");
    try {
      const size = fs.fstatSync(fd).size;
      const length = Math.min(size, maxBytes);
      const buffer = Buffer.alloc(length);
      fs.readSync(fd, buffer, 0, length, size - length);
      text = buffer.toString("utf8");
      // A read that starts mid-file starts mid-line: drop that piece.
      if (length < size) text = text.slice(text.indexOf("\n") + 1);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return [];
  }
  const lines: LogLine[] = [];
  for (const raw of text.split("\n")) {
    const first = raw.indexOf(" ");
    const second = raw.indexOf(" ", first + 1);
    if (first < 0 || second < 0) continue;
    const timeMs = Date.parse(raw.slice(0, first));
    const stream = raw.slice(first + 1, second);
    if (Number.isNaN(timeMs) || !LOG_STREAMS.has(stream)) continue;
    lines.push({ timeMs, stream: stream as LogStream, text: raw.slice(second + 1) });
  }
  return count <= 0 ? [] : lines.slice(-count);
}

/**
 * Splits a byte stream into lines, cutting any line longer than `maxChars`
 * so that a process printing without newlines cannot grow memory.
 */
export class LineSplitter {
  private pending = "";

  constructor(
    private readonly maxChars: number,
    private readonly emit: (line: string) => void,
  ) {}

  write(chunk: string): void {
    this.pending += chunk;
    let newline = this.pending.indexOf("\n");
    while (newline >= 0) {
      this.emitCut(this.pending.slice(0, newline).replace(/\r$/, ""));
      this.pending = this.pending.slice(newline + 1);
      newline = this.pending.indexOf("\n");
    }
    while (this.pending.length > this.maxChars) {
      this.emit(this.pending.slice(0, this.maxChars));
      this.pending = this.pending.slice(this.maxChars);
    }
  }

  end(): void {
    if (this.pending !== "") this.emitCut(this.pending);
    this.pending = "";
  }

  private emitCut(line: string): void {
    for (let i = 0; i < line.length || i === 0; i += this.maxChars) this.emit(line.slice(i, i + this.maxChars));
  }
}

/**
 * A log file that keeps at most about `maxBytes` of recent output: when it
 * grows past the limit it becomes `<file>.1` (replacing the previous one).
 */
export class RotatingLogFile {
  private stream: fs.WriteStream;
  private bytes: number;
  private closed = false;

  constructor(
    readonly path: string,
    private readonly maxBytes: number,
  ) {
    this.bytes = fs.existsSync(path) ? fs.statSync(path).size : 0;
    this.stream = this.open();
  }

  /** Appends a line; lines written after close (late output of an exiting process) are dropped. */
  write(formatted: string): void {
    if (this.closed) return;
    const data = `${formatted}\n`;
    if (this.bytes + Buffer.byteLength(data) > this.maxBytes && this.bytes > 0) this.rotate();
    this.bytes += Buffer.byteLength(data);
    this.stream.write(data);
  }

  close(): Promise<void> {
    this.closed = true;
    return new Promise((resolve) => this.stream.end(resolve));
  }

  private rotate(): void {
    this.stream.end();
    fs.renameSync(this.path, `${this.path}.1`);
    this.bytes = 0;
    this.stream = this.open();
  }

  private open(): fs.WriteStream {
    // Opened synchronously so the file exists (and can be renamed) before the first write lands.
    const stream = fs.createWriteStream(this.path, { fd: fs.openSync(this.path, "a") });
    // A full disk must not crash the manager; the ring buffer still has the lines.
    stream.on("error", () => undefined);
    return stream;
  }
}
