/**
 * An incremental parser of text/event-stream, for reading the console's live
 * stream through fetch (EventSource cannot send an Authorization header).
 */
export interface ServerEvent {
  event: string;
  data: string;
}

/** Most characters one event may hold before the stream is taken as broken. */
const MAX_EVENT_CHARS = 16 * 1024 * 1024;

export class SseParser {
  private buffer = "";

  /** Feeds a chunk; returns the events it completed. */
  push(chunk: string): ServerEvent[] {
    this.buffer += chunk;
    if (this.buffer.length > MAX_EVENT_CHARS) throw new Error(`an event of more than ${MAX_EVENT_CHARS} characters`);
    const events: ServerEvent[] = [];
    for (;;) {
      const match = /\r?\n\r?\n/.exec(this.buffer);
      if (match === null) break;
      const block = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const event = parseBlock(block);
      if (event !== undefined) events.push(event);
    }
    return events;
  }
}

function parseBlock(block: string): ServerEvent | undefined {
  let event = "message";
  const data: string[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return data.length === 0 ? undefined : { event, data: data.join("\n") };
}
