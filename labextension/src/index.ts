/**
 * labtrack in JupyterLab: a launcher tile, palette commands that open the
 * tracking UI (served by the labtrack server behind jupyter-server-proxy at
 * `<base_url>labtrack/`) in a JupyterLab tab or a new browser tab, and a
 * status-bar item that follows the server.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  MainAreaWidget,
  WidgetTracker
} from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { IFrame } from '@jupyterlab/ui-components';

import { labtrackIcon, uiUrl } from './common';
import { StatusItem } from './status';

const PLUGIN_ID = 'labtrack:plugin';

/** Command ids: one source of truth for the launcher, palette and restorer. */
export namespace CommandIDs {
  export const open = 'labtrack:open';
  export const openLabTab = 'labtrack:open-lab-tab';
  export const openBrowserTab = 'labtrack:open-browser-tab';
}

type OpenIn = 'browser-tab' | 'lab-tab';

/**
 * The sandbox exceptions the UI needs: it is a script app (allow-scripts),
 * calls its own API same-origin, and offers artifact downloads.  The default
 * sandbox of IFrame is empty, which blocks scripts.
 */
const SANDBOX: IFrame.SandboxExceptions[] = [
  'allow-same-origin',
  'allow-scripts',
  'allow-forms',
  'allow-popups',
  'allow-downloads',
  'allow-modals'
];

/** The browser tab the UI was opened in, reused by later clicks (one tab, not one per click). */
let uiWindow: Window | null = null;

function newBrowserTab(): void {
  if (uiWindow && !uiWindow.closed) {
    uiWindow.focus();
    return;
  }
  // Called synchronously from the click, so the browser allows the popup.  A named
  // target: after a Lab reload (the handle is gone) it still finds the open tab.  Not
  // noopener, to keep the handle: the UI is same-origin with JupyterLab anyway.
  uiWindow = window.open(uiUrl(), 'labtrack-ui');
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Launcher tile, commands and status bar for the labtrack tracking server.',
  autoStart: true,
  optional: [ILauncher, ICommandPalette, ILayoutRestorer, ISettingRegistry, IStatusBar],
  activate: (
    app: JupyterFrontEnd,
    launcher: ILauncher | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    settingRegistry: ISettingRegistry | null,
    statusBar: IStatusBar | null
  ) => {
    let openIn: OpenIn = 'browser-tab';
    const tracker = new WidgetTracker<MainAreaWidget<IFrame>>({ namespace: 'labtrack' });

    // The UI's route (its location hash) per Lab tab, saved with the layout so that a
    // reload reopens the page the user was on.
    const routes = new WeakMap<MainAreaWidget<IFrame>, string>();

    const followRoute = (widget: MainAreaWidget<IFrame>): void => {
      const frame = widget.content.node.querySelector('iframe');
      frame?.addEventListener('load', () => {
        const win = frame.contentWindow;
        if (!win) {
          return;
        }
        const save = () => {
          routes.set(widget, win.location.hash);
          void tracker.save(widget);
        };
        win.addEventListener('hashchange', save);
        save();
      });
    };

    const openLabTab = (route?: string): MainAreaWidget<IFrame> => {
      const existing = tracker.currentWidget ?? tracker.find(() => true);
      if (existing && !existing.isDisposed) {
        app.shell.activateById(existing.id);
        return existing;
      }
      const content = new IFrame({ sandbox: SANDBOX, referrerPolicy: 'same-origin' });
      content.url = uiUrl() + (route && route.startsWith('#/') ? route : '');
      content.addClass('lt-Frame');
      const widget = new MainAreaWidget({ content });
      widget.id = 'labtrack-ui';
      widget.title.label = 'labtrack';
      widget.title.caption = 'labtrack experiment tracker';
      widget.title.icon = labtrackIcon;
      widget.title.closable = true;
      routes.set(widget, route ?? '');
      followRoute(widget);
      void tracker.add(widget);
      app.shell.add(widget, 'main');
      app.shell.activateById(widget.id);
      return widget;
    };

    app.commands.addCommand(CommandIDs.open, {
      label: 'labtrack',
      caption: 'Open the labtrack experiment tracker (starts its server on mlruns.db)',
      icon: labtrackIcon,
      execute: () => {
        if (openIn === 'lab-tab') {
          return openLabTab();
        }
        newBrowserTab();
        return null;
      }
    });
    app.commands.addCommand(CommandIDs.openLabTab, {
      label: 'labtrack: Open in a JupyterLab Tab',
      icon: labtrackIcon,
      execute: args => openLabTab(typeof args.route === 'string' ? args.route : undefined)
    });
    app.commands.addCommand(CommandIDs.openBrowserTab, {
      label: 'labtrack: Open in a New Browser Tab',
      icon: labtrackIcon,
      execute: () => newBrowserTab()
    });

    launcher?.add({ command: CommandIDs.open, category: 'Other', rank: 0 });
    palette?.addItem({ command: CommandIDs.openLabTab, category: 'labtrack' });
    palette?.addItem({ command: CommandIDs.openBrowserTab, category: 'labtrack' });
    void restorer?.restore(tracker, {
      command: CommandIDs.openLabTab,
      args: widget => ({ route: routes.get(widget) ?? '' }),
      name: () => 'labtrack'
    });

    const status = new StatusItem(() => void app.commands.execute(CommandIDs.open));
    if (statusBar) {
      statusBar.registerStatusItem('labtrack:status', {
        item: status,
        align: 'left',
        rank: 100,
        isActive: () => status.enabled
      });
    }

    const apply = (settings: ISettingRegistry.ISettings): void => {
      openIn = (settings.get('openIn').composite as OpenIn) ?? 'browser-tab';
      status.interval = 1000 * ((settings.get('statusInterval').composite as number) ?? 5);
      status.enabled = (settings.get('showStatus').composite as boolean) ?? true;
    };
    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          apply(settings);
          settings.changed.connect(apply);
        })
        .catch(reason => console.warn('labtrack: settings not loaded', reason))
        .then(() => status.start());
    } else {
      status.start();
    }
  }
};

export default plugin;
