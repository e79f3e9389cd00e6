/**
 * The status-bar item: "labtrack: off" or "labtrack: N active", refreshed by
 * polling `<base_url>labtrack-status` (labtrack's Jupyter server extension,
 * authenticated like every Jupyter request).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { labtrackIcon } from './common';

/** What `GET <base_url>labtrack-status` answers. */
export interface IStatus {
  running: boolean;
  active_runs: number;
}

export async function fetchStatus(): Promise<IStatus> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'labtrack-status');
  const resp = await ServerConnection.makeRequest(url, {}, settings);
  if (!resp.ok) {
    throw new Error(`labtrack-status: HTTP ${resp.status}`);
  }
  return (await resp.json()) as IStatus;
}

export function describe(status: IStatus | null): string {
  if (status === null) {
    return 'labtrack: ?';
  }
  if (!status.running) {
    return 'labtrack: off';
  }
  const n = status.active_runs;
  return `labtrack: ${n} active run${n === 1 ? '' : 's'}`;
}

export class StatusItem extends Widget {
  /** Milliseconds between polls (from the settings). */
  interval = 5000;
  enabled = true;

  private _timer: number | undefined;
  private _label: HTMLSpanElement;

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

  private async _tick(): Promise<void> {
    // A hidden tab does not poll: many open Lab tabs on a login node add up.
    if (this.enabled && !document.hidden) {
      let status: IStatus | null = null;
      try {
        status = await fetchStatus();
      } catch {
        status = null;
      }
      this.node.dataset.running = String(status?.running ?? false);
      // textContent, never innerHTML: nothing from the server becomes markup.
      this._label.textContent = describe(status);
    }
    if (!this.isDisposed) {
      this._timer = window.setTimeout(() => void this._tick(), this.interval);
    }
  }
}
