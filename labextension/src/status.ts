/**
 * The status-bar item: "labtrack: off", "labtrack: N active runs" or "labtrack: <run> finished",
 * refreshed by polling `<base_url>labtrack-status` (labtrack's Jupyter server
 * extension, authenticated like every Jupyter request).  Each poll asks for the
 * runs that ended since the previous one, so a run shorter than the poll
 * interval (never seen RUNNING) is still reported.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { labtrackIcon } from './common';

/** A run that ended, as `labtrack-status` lists it. */
export interface IFinishedRun {
  run_id: string;
  name: string;
  status: string;
  end_time: number;
}

/** What `GET <base_url>labtrack-status[?since=<ms>]` answers. */
export interface IStatus {
  running: boolean;
  active_runs: number;
  /** The server's clock (ms): the next poll's `since`. */
  now?: number;
  /** Runs that ended since `since` (a few seconds of overlap: count each id once). */
  finished?: IFinishedRun[];
}

export async function fetchStatus(since?: number): Promise<IStatus> {
  const settings = ServerConnection.makeSettings();
  let url = URLExt.join(settings.baseUrl, 'labtrack-status');
  if (since !== undefined) {
    url += `?since=${encodeURIComponent(String(since))}`;
  }
  const resp = await ServerConnection.makeRequest(url, {}, settings);
  if (!resp.ok) {
    throw new Error(`labtrack-status: HTTP ${resp.status}`);
  }
  return (await resp.json()) as IStatus;
}

/**
 * The label: the server state, active runs, and the last run that ended since
 * the page loaded (so a run shorter than the poll interval still shows).
 */
export function describe(status: IStatus | null, last: IFinishedRun | null = null): string {
  if (status === null) {
    return 'labtrack: ?';
  }
  if (!status.running) {
    return 'labtrack: off';
  }
  const n = status.active_runs;
  const active = `${n} active run${n === 1 ? '' : 's'}`;
  if (last === null) {
    return `labtrack: ${active}`;
  }
  const ended = `${last.name} ${String(last.status).toLowerCase()}`;
  return n > 0 ? `labtrack: ${active} · ${ended}` : `labtrack: ${ended}`;
}

export class StatusItem extends Widget {
  /** Milliseconds between polls (from the settings). */
  interval = 5000;
  enabled = true;

  private _timer: number | undefined;
  private _label: HTMLSpanElement;
  /** The server's `now` at the last answer: runs that ended after it are new. */
  private _since: number | undefined;
  /** Run ids already counted, with their end time (answers overlap by a few seconds). */
  private _seen = new Map<string, number>();
  private _last: IFinishedRun | null = null;
  private _finishedCount = 0;

  constructor(onClick: () => void) {
    super();
    this.addClass('lt-StatusItem');
    this.node.title = 'labtrack tracking server (click to open)';
    const icon = document.createElement('span');
    labtrackIcon.element({ container: icon, height: '14px', width: '14px' });
    const dot = document.createElement('span');
    dot.className = 'lt-StatusItem-dot';
    this._label = document.createElement('span');
    this._label.className = 'lt-StatusItem-label';
    this._label.textContent = 'labtrack';
    this.node.append(icon, dot, this._label);
    this.node.addEventListener('click', onClick);
  }

  start(): void {
    void this._tick();
  }

  dispose(): void {
    window.clearTimeout(this._timer);
    super.dispose();
  }

  /** Remember the runs that ended since the last poll, each once; the newest is shown. */
  private _note(status: IStatus): void {
    const fresh = (status.finished ?? []).filter(r => r.run_id && !this._seen.has(r.run_id));
    for (const run of fresh) {
      this._seen.set(run.run_id, run.end_time);
    }
    // Ids that ended long before the last answer cannot come back: forget them.
    for (const [id, end] of this._seen) {
      if (this._since !== undefined && end < this._since - 60_000) {
        this._seen.delete(id);
      }
    }
    this._finishedCount += fresh.length;
    const newest = fresh.reduce<IFinishedRun | null>(
      (best, r) => (best === null || r.end_time > best.end_time ? r : best),
      null
    );
    if (newest !== null && (this._last === null || newest.end_time >= this._last.end_time)) {
      this._last = newest;
    }
    if (status.now !== undefined) {
      this._since = status.now;
    }
  }

  private async _tick(): Promise<void> {
    // A hidden tab does not poll: many open Lab tabs on a login node add up.
    if (this.enabled && !document.hidden) {
      let status: IStatus | null = null;
      try {
        status = await fetchStatus(this._since);
      } catch {
        status = null;
      }
      if (status !== null) {
        this._note(status);
      }
      this.node.dataset.running = String(status?.running ?? false);
      // textContent, never innerHTML: nothing from the server becomes markup.
      this._label.textContent = describe(status, this._last);
      this.node.title =
        'labtrack tracking server (click to open)' +
        (this._finishedCount
          ? `: ${this._finishedCount} run${this._finishedCount === 1 ? '' : 's'} ended since this page loaded`
          : '');
    }
    if (!this.isDisposed) {
      this._timer = window.setTimeout(() => void this._tick(), this.interval);
    }
  }
}
