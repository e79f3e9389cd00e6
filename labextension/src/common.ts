/** Shared bits: the icon and where the UI lives. */
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { LabIcon } from '@jupyterlab/ui-components';

import iconSvg from '../style/icon.svg';

export const labtrackIcon = new LabIcon({ name: 'labtrack:icon', svgstr: iconSvg });

/** The proxied UI, `<base_url>labtrack/` (the trailing slash keeps its relative URLs right). */
export function uiUrl(): string {
  return URLExt.join(PageConfig.getBaseUrl(), 'labtrack') + '/';
}
