import fs from "node:fs";
import type { LogStream } from "./replica-backend.js";

/**
 * Where a replica's process writes its output: two files beside its log,
 * `<log minus .log>.stdout` and `.stderr`, and `.offsets`, how far the manager
 * has read them. Files, not pipes, so that the replica outlives its manager
 * (a pipe whose reader died fails the writer's next write: EPIPE, SIGPIPE) and
 * the next manager reads on from where the last one stopped.
 */
export interface OutputFiles {
  stdout: string;
  stderr: string;
  offsets: string;
}

export function outputFilesFor(logFile: string): OutputFiles {
  const base = logFile.endsWith(".log") ? logFile.slice(0, -".log".length) : logFile;
  return { stdout: `${base}.stdout`, stderr: `${base}.stderr`, offsets: `${base}.offsets` };
}

/**
 * Opens the files for a new process's stdout and stderr (appending) and
 * returns their descriptors for spawn's stdio; the caller closes them once
 * the process has them.
 */
export function openOutputForProcess(files: OutputFiles): [number, number] {
  const stdout = fs.openSync(files.stdout, "a");
  try {
    return [stdout, fs.openSync(files.stderr, "a")];
  } catch (err) {
    fs.closeSync(stdout);
    throw err;
  }
}

export interface OutputTailOptions {
  /** Longer lines are cut into pieces of this many characters. */
  maxLineChars: number;
  /**
   * Once the manager has read this many bytes of a file and read it all, the
   * file is truncated to empty (the process appends, so its next write lands
   * at the new end), keeping the files small: the formatted log holds the
   * history. Output written between the last read and the truncation (a few
   * microseconds) is lost, as with logrotate's copytruncate.
   */
  truncateAtBytes: number;
  /** Fallback poll; changes are also picked up through fs.watch as they happen. */
  pollIntervalMs: number;
}

interface TailedFile {
  readonly stream: "stdout" | "stderr";
  readonly path: string;
  fd: number | undefined;
  offset: number;
}

const CHUNK_BYTES = 64 * 1024;
/** Most bytes read from one file per drain, so a flood of output cannot hold the event loop. */
const MAX_DRAIN_BYTES = 4 * 1024 * 1024;

/**
 * Follows a replica's output files, handing each complete line to `onLine`
 * and remembering in the offsets file how far it got, so that a manager that
 * adopts the replica after this one died neither repeats nor skips lines.
 */
export class OutputTail {
  private readonly files: TailedFile[];
  private readonly watchers: fs.FSWatcher[] = [];
  private poll: NodeJS.Timeout | undefined;
  private scheduled: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly paths: OutputFiles,
    private readonly onLine: (stream: LogStream, text: string) => void,
    private readonly options: OutputTailOptions,
  ) {
    const offsets = readOffsets(paths.offsets);
    this.files = (["stdout", "stderr"] as const).map((stream) => ({ stream, path: paths[stream], fd: undefined, offset: offsets[stream] ?? 0 }));
    this.poll = setInterval(() => this.drain(), options.pollIntervalMs);
    this.poll.unref();
    for (const f of this.files) {
      try {
        const watcher = fs.watch(f.path, { persistent: false }, () => this.schedule());
        watcher.on("error", () => undefined);
        this.watchers.push(watcher);
      } catch {
        // No inotify (or the file is not there yet): the poll still reads it.
      }
    }
  }

  /** Reads what the process wrote since the last drain; complete lines only unless `final`. */
  drain(final = false): void {
    if (this.closed) return;
    let moved = false;
    for (const f of this.files) moved = this.drainFile(f, final) || moved;
    if (moved) this.saveOffsets();
  }

  /** Reads the rest (a last line without its newline too) and stops following; the files stay. */
  close(final: boolean): void {
    this.drain(final);
    this.stop();
  }

  /** Stops following and deletes the files: the replica is gone for good. */
  remove(): void {
    this.stop();
    for (const file of [this.paths.stdout, this.paths.stderr, this.paths.offsets]) fs.rmSync(file, { force: true });
  }

  private stop(): void {
    this.closed = true;
    clearInterval(this.poll);
    clearTimeout(this.scheduled);
    for (const w of this.watchers) w.close();
    for (const f of this.files) {
      if (f.fd !== undefined) fs.closeSync(f.fd);
      f.fd = undefined;
    }
  }

  private schedule(): void {
    if (this.scheduled !== undefined || this.closed) return;
    // Coalesces a burst of writes into one read.
    this.scheduled = setTimeout(() => {
      this.scheduled = undefined;
      this.drain();
    }, 20);
    this.scheduled.unref();
  }

  /** True when the offset moved. */
  private drainFile(f: TailedFile, final: boolean): boolean {
    if (f.fd === undefined) {
      try {
        f.fd = fs.openSync(f.path, "r+");
      } catch {
        return false;
      }
    }
    const fd = f.fd;
    const start = f.offset;
    let size = fs.fstatSync(fd).size;
    // Smaller than what was read: truncated by someone else; read it from the start.
    if (size < f.offset) f.offset = 0;
    const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
    let budget = MAX_DRAIN_BYTES;
    while (f.offset < size && budget > 0) {
      const n = fs.readSync(fd, buffer, 0, Math.min(CHUNK_BYTES, size - f.offset), f.offset);
      if (n <= 0) break;
      budget -= n;
      const consumed = this.emitLines(f.stream, buffer.subarray(0, n), final && f.offset + n >= size);
      if (consumed === 0) break;
      f.offset += consumed;
    }
    size = fs.fstatSync(fd).size;
    if (f.offset >= this.options.truncateAtBytes && f.offset === size) {
      fs.ftruncateSync(fd, 0);
      f.offset = 0;
      return true;
    }
    return f.offset !== start;
  }

  /**
   * Emits the complete lines of `chunk` and returns how many bytes they took.
   * A chunk full of one unfinished line is emitted as pieces; `last` emits an
   * unfinished line at its end too.
   */
  private emitLines(stream: LogStream, chunk: Buffer, last: boolean): number {
    let from = 0;
    for (let newline = chunk.indexOf(10, from); newline >= 0; newline = chunk.indexOf(10, from)) {
      this.emitCut(stream, chunk.toString("utf8", from, newline).replace(/\r$/, ""));
      from = newline + 1;
    }
    if (from < chunk.length && (last || (from === 0 && chunk.length === CHUNK_BYTES))) {
      this.emitCut(stream, chunk.toString("utf8", from));
      from = chunk.length;
    }
    return from;
  }

  private emitCut(stream: LogStream, line: string): void {
    const max = this.options.maxLineChars;
    for (let i = 0; i < line.length || i === 0; i += max) this.onLine(stream, line.slice(i, i + max));
  }

  private saveOffsets(): void {
    const offsets: Record<string, number> = {};
    for (const f of this.files) offsets[f.stream] = f.offset;
    try {
      fs.writeFileSync(this.paths.offsets, JSON.stringify(offsets));
    } catch {
      // A full disk: the next manager may repeat some lines.
    }
  }
}

function readOffsets(file: string): Partial<Record<"stdout" | "stderr", number>> {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
    const pick = (k: string) => (typeof parsed[k] === "number" && Number.isSafeInteger(parsed[k]) && (parsed[k] as number) >= 0 ? (parsed[k] as number) : 0);
    return { stdout: pick("stdout"), stderr: pick("stderr") };
  } catch {
    return {};
  }
}
