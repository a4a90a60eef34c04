/**
 * A progress bar on one terminal line, for a long CLI operation whose total is known up front:
 *
 *   [#########-----------] 42% 420 000/1 000 000 rows · 12 s left
 *
 * Redrawn at most every `intervalMs` (a redraw per chunk would cost more than the work on a fast
 * export), always in place (`\r`, then the line is cleared to its end), and finished with a
 * newline. Without a total (a server that does not count) it falls back to a plain counter.
 * Drawing only: the caller decides whether there is a terminal to draw on.
 */

export interface ProgressOptions {
  /** What is counted, plural: 'rows'. */
  unit: string;
  /** The expected total; null when unknown. */
  total: number | null;
  write: (text: string) => void;
  /** Milliseconds; injectable for tests. */
  now?: () => number;
  intervalMs?: number;
  /** Terminal width; the line is kept shorter than this. */
  columns?: number;
}

const BAR_WIDTH = 20;
/** No estimate until this much has been seen: the first rows include connection set-up. */
const ESTIMATE_AFTER_MS = 1000;

/** 1000000 → "1 000 000": a space groups thousands whatever the locale, as in the README. */
export function groupThousands(n: number): string {
  return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
}

/** Seconds → "12 s", "3 min 05 s", "1 h 02 min". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)} min ${pad(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${pad(Math.floor((s % 3600) / 60))} min`;
}

export class ProgressBar {
  private done = 0;
  private readonly startedAt: number;
  private lastDrawAt = Number.NEGATIVE_INFINITY;
  private finished = false;
  private readonly now: () => number;
  private readonly intervalMs: number;

  constructor(private readonly options: ProgressOptions) {
    this.now = options.now ?? Date.now;
    this.intervalMs = options.intervalMs ?? 100;
    this.startedAt = this.now();
  }

  /** Sets how many are done so far; redraws if the last redraw is old enough. */
  update(done: number): void {
    this.done = done;
    const now = this.now();
    if (now - this.lastDrawAt < this.intervalMs) return;
    this.lastDrawAt = now;
    this.options.write(`\r${this.fit(this.line(now, false))}\x1b[K`);
  }

  /** The last redraw, with the elapsed time instead of an estimate, and a newline. */
  finish(done = this.done): void {
    if (this.finished) return;
    this.finished = true;
    this.done = done;
    this.options.write(`\r${this.fit(this.line(this.now(), true))}\x1b[K\n`);
  }

  /** The text of the line as it stands (no control characters). */
  line(now: number, final: boolean): string {
    const { unit } = this.options;
    const elapsedMs = now - this.startedAt;
    // More may arrive than was counted (events added during an export): the total grows with them.
    const total = this.options.total === null ? null : Math.max(this.options.total, this.done);
    if (total === null) {
      const tail = final ? ` · ${formatDuration(elapsedMs / 1000)}` : '';
      return `${groupThousands(this.done)} ${unit}${tail}`;
    }
    const ratio = total === 0 ? 1 : this.done / total;
    const filled = Math.min(BAR_WIDTH, Math.floor(ratio * BAR_WIDTH));
    const bar = `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]`;
    const percent = `${Math.floor(ratio * 100)}%`.padStart(4);
    return `${bar} ${percent} ${groupThousands(this.done)}/${groupThousands(total)} ${unit} · ${this.timeText(
      elapsedMs,
      total,
      final,
    )}`;
  }

  private timeText(elapsedMs: number, total: number, final: boolean): string {
    if (final) return formatDuration(elapsedMs / 1000);
    if (this.done >= total) return '0 s left';
    if (elapsedMs < ESTIMATE_AFTER_MS || this.done === 0) return 'estimating…';
    const perMs = this.done / elapsedMs;
    return `${formatDuration((total - this.done) / perMs / 1000)} left`;
  }

  /** Cut to the terminal width: a line that wraps can no longer be redrawn in place. */
  private fit(text: string): string {
    const columns = this.options.columns;
    return columns && columns > 1 && text.length >= columns ? text.slice(0, columns - 1) : text;
  }
}
