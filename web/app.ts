/**
 * The quiet-files page: the network's files with live progress (server-sent events read
 * through fetch, so the token stays in a header), downloads with priority, pause, resume,
 * cancel, open and save, previews that play while downloading, and sharing by picking or
 * dropping a file. Served by the daemon; the token comes from the page's `?token=`.
 */

import type { Progress } from '../src/node/progress-types.js'

/** A file as `GET /api/files` lists it: its progress, and who shared it. */
interface FileView extends Progress {
  shared_by_name?: string | null
  shared_at?: string
  /** What was posted with it (`qf share --message`), oldest first. */
  messages?: Array<{ text: string, author_name: string | null, at: string }>
}

interface StatusView {
  name: string
  network: { name: string } | null
  peers: PeerView[]
}

interface PeerView {
  connected: boolean
  name: string | null
  public_key: string
  bad_windows: number
  route: 'direct' | 'relayed' | 'unreachable'
  via: { name: string | null, public_key: string } | null
  since_ms: number | null
}

/** How often the header (peers connected, blame) is refreshed, and the daemon's presence checked. */
const HEADER_REFRESH_MS = 2_000
/** How long to wait before asking a stopped daemon again. */
const RECONNECT_MS = 1_000

const token = new URLSearchParams(location.search).get('token') ?? ''
const files = new Map<string, FileView>()
const openPreviews = new Set<string>()
/** Members' names by public key, from the last status: who each file's bytes came from. */
const peerNames = new Map<string, string>()
/** Set once the token was replaced: nothing this page asks will work again. */
let linkInvalid = false
let daemonStopped = false

/** The daemon did not answer at all: stopped, or restarting. */
class DaemonUnreachable extends Error {}

/**
 * Shows or clears "daemon stopped" as the daemon goes and comes back. On its return the
 * list and the header are fetched again: events sent meanwhile were missed.
 */
function setDaemonStopped (stopped: boolean): void {
  if (stopped === daemonStopped || linkInvalid) return
  daemonStopped = stopped
  const banner = document.getElementById('daemon-state')!
  banner.hidden = !stopped
  banner.textContent = stopped ? 'The daemon stopped; reconnecting…' : ''
  document.body.dataset.daemon = stopped ? 'stopped' : 'running'
  if (!stopped) void Promise.all([refreshHeader(), loadFiles()]).catch(() => {})
}

async function api (path: string, init: RequestInit = {}): Promise<Response> {
  let response: Response
  try {
    response = await fetch(path, { ...init, headers: { ...(init.headers as Record<string, string> | undefined), authorization: `Bearer ${token}` } })
  } catch (err) {
    setDaemonStopped(true)
    throw new DaemonUnreachable(`the daemon does not answer (${(err as Error).message})`)
  }
  setDaemonStopped(false)
  if (response.status === 401) {
    linkInvalid = true
    document.getElementById('daemon-state')!.hidden = true
    // The daemon's token was replaced (qf token --rotate): this page's link no longer works.
    document.getElementById('who')!.textContent = 'This page\'s link is no longer valid: the daemon\'s token was replaced. Open the new link that "qf open" prints.'
    throw new Error('unauthorized: the page link is no longer valid')
  }
  if (!response.ok) {
    const body = await response.json().catch(() => ({ error: response.statusText })) as { error?: string }
    throw new Error(body.error ?? `HTTP ${response.status}`)
  }
  return response
}

function contentUrl (file: FileView): string {
  return `/api/files/${file.fileId}/content?token=${encodeURIComponent(token)}`
}

function formatBytes (bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++ }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`
}

function formatEta (seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '–'
  const s = Math.round(seconds)
  return s >= 3600 ? `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min` : s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`
}

function element<K extends keyof HTMLElementTagNameMap> (tag: K, props: Partial<HTMLElementTagNameMap[K]> & { dataset?: Record<string, string> } = {}, ...children: Array<Node | string>): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag)
  const { dataset, ...rest } = props
  Object.assign(node, rest)
  if (dataset !== undefined) for (const [k, v] of Object.entries(dataset)) node.dataset[k] = v
  node.append(...children)
  return node
}

function button (label: string, action: string, file: FileView, primary = false): HTMLButtonElement {
  return element('button', { type: 'button', className: primary ? 'primary' : '', textContent: label, ariaLabel: `${label} ${file.name}`, dataset: { action } })
}

function actionsFor (file: FileView): HTMLElement {
  const box = element('div', { className: 'actions' })
  const previewable = /^(image|audio|video)\//.test(file.mediaType)
  if (['available', 'cancelled', 'expired', 'failed'].includes(file.state)) {
    const priority = element('select', { ariaLabel: `Priority for ${file.name}`, dataset: { role: 'priority' } })
    for (let p = 10; p >= 1; p--) priority.append(element('option', { value: String(p), textContent: `priority ${p}`, selected: p === 5 }))
    box.append(priority, button('Download', 'download', file, true))
  }
  if (file.state === 'active' || file.state === 'queued' || file.state === 'stalled') box.append(button('Pause', 'pause', file), button('Cancel', 'cancel', file))
  if (file.state === 'paused') box.append(button('Resume', 'resume', file, true), button('Cancel', 'cancel', file))
  if (file.state === 'complete') {
    box.append(
      element('a', { className: 'button primary', href: contentUrl(file), target: '_blank', rel: 'noopener', textContent: 'Open', ariaLabel: `Open ${file.name}`, dataset: { action: 'open' } }),
      element('a', { className: 'button', href: contentUrl(file), download: file.name, textContent: 'Save', ariaLabel: `Save ${file.name}`, dataset: { action: 'save' } }))
  }
  if (previewable && file.state !== 'failed') box.append(button(openPreviews.has(file.fileId) ? 'Hide preview' : 'Preview', 'preview', file))
  return box
}

function previewFor (file: FileView): HTMLElement | null {
  if (!openPreviews.has(file.fileId)) return null
  const src = contentUrl(file)
  const kind = file.mediaType.split('/')[0]
  const media = kind === 'image'
    ? element('img', { src, alt: file.name })
    : kind === 'audio' ? element('audio', { src, controls: true, preload: 'metadata' }) : element('video', { src, controls: true, preload: 'metadata' })
  return element('div', { className: 'preview' }, media)
}

function renderFile (file: FileView): HTMLLIElement {
  const item = element('li', { className: 'file', dataset: { fileId: file.fileId, state: file.state } })
  item.append(
    element('div', { className: 'file-head' },
      element('span', { className: 'file-name', textContent: file.name }),
      element('span', { className: 'state', textContent: file.state, dataset: { state: file.state } })),
    element('div', { className: 'meta', textContent: `${formatBytes(file.bytesTotal)} · shared by ${file.shared_by_name ?? 'someone'}${file.shared_at === undefined ? '' : ` on ${new Date(file.shared_at).toLocaleString()}`} · ${file.mediaType}` }),
    ...(file.messages ?? []).map(m => element('p', { className: 'message', textContent: `“${m.text}” — ${m.author_name ?? 'someone'}, ${new Date(m.at).toLocaleString()}` })),
    element('progress', { max: 100, value: file.percent, ariaLabel: `${file.name} progress` }),
    element('div', { className: 'numbers' },
      element('span', { className: 'percent', textContent: `${file.percent.toFixed(1)}%` }),
      element('span', { textContent: `${formatBytes(file.bytesReceived)} of ${formatBytes(file.bytesTotal)}` }),
      element('span', { className: 'speed', textContent: file.state === 'active' ? `${formatBytes(Math.round(file.speedBytesPerSecond))}/s` : '' }),
      element('span', { className: 'eta', textContent: file.state === 'active' ? `ETA ${formatEta(file.etaSeconds)}` : '' })))
  if (file.reason !== null && ['failed', 'stalled', 'queued', 'active'].includes(file.state)) item.append(element('p', { className: 'reason', textContent: file.reason }))
  const sources = sourcesText(file)
  if (sources !== null) item.append(element('p', { className: 'sources', textContent: sources }))
  item.append(actionsFor(file))
  const preview = previewFor(file)
  if (preview !== null) item.append(preview)
  return item
}

/** "from alice 62% · carol 38%": who the bytes fetched here came from, and each one's share. */
function sourcesText (file: FileView): string | null {
  const sources = file.sources ?? []
  const total = sources.reduce((sum, source) => sum + source.bytes, 0)
  if (total === 0) return null
  const parts = sources.map(source => `${peerNames.get(source.peer) ?? `${source.peer.slice(0, 12)}…`} ${Math.round((100 * source.bytes) / total)}%`)
  return `from ${parts.join(' · ')}`
}

/** Re-renders one file's card in place, keeping keyboard focus and a playing preview. */
function update (file: FileView): void {
  const list = document.getElementById('files')!
  const old = list.querySelector<HTMLLIElement>(`li[data-file-id="${file.fileId}"]`)
  const fresh = renderFile(file)
  if (old === null) { list.prepend(fresh); document.getElementById('empty')!.hidden = true; return }
  const focusedAction = (document.activeElement as HTMLElement | null)?.dataset?.action
  const oldPreview = old.querySelector('.preview')
  const freshPreview = fresh.querySelector('.preview')
  if (oldPreview !== null && freshPreview !== null) freshPreview.replaceWith(oldPreview)
  const oldPriority = old.querySelector<HTMLSelectElement>('select[data-role="priority"]')
  const freshPriority = fresh.querySelector<HTMLSelectElement>('select[data-role="priority"]')
  if (oldPriority !== null && freshPriority !== null) freshPriority.value = oldPriority.value
  old.replaceWith(fresh)
  // Keep the keyboard where it was: on the same action, or on the one that replaced it.
  if (focusedAction !== undefined) {
    const next = fresh.querySelector<HTMLElement>(`[data-action="${focusedAction}"]`) ??
      fresh.querySelector<HTMLElement>(`[data-action="${FOCUS_AFTER[focusedAction] ?? ''}"]`)
    next?.focus()
  }
}

/** Where focus goes when the focused button is replaced by a state change. */
const FOCUS_AFTER: Record<string, string> = { pause: 'resume', resume: 'pause', download: 'pause', cancel: 'download' }

async function act (file: FileView, action: string, item: HTMLElement): Promise<void> {
  const id = file.fileId
  if (action === 'preview') {
    if (openPreviews.has(id)) openPreviews.delete(id)
    else openPreviews.add(id)
    const old = item.querySelector('.preview')
    if (old !== null && !openPreviews.has(id)) old.remove()
    update(files.get(id)!)
    return
  }
  const routes: Record<string, [string, string]> = {
    download: ['POST', `/api/files/${id}/download`], pause: ['POST', `/api/files/${id}/pause`],
    resume: ['POST', `/api/files/${id}/resume`], cancel: ['DELETE', `/api/files/${id}/download`]
  }
  const route = routes[action]
  if (route === undefined) return
  const priority = Number(item.querySelector<HTMLSelectElement>('select[data-role="priority"]')?.value ?? 5)
  const response = await api(route[1], { method: route[0], headers: { 'content-type': 'application/json' }, body: JSON.stringify({ priority }) })
  const progress = await response.json() as FileView
  files.set(id, { ...files.get(id), ...progress })
  update(files.get(id)!)
}

async function share (file: File): Promise<void> {
  const status = document.getElementById('share-status')!
  status.textContent = `Sharing ${file.name}…`
  try {
    const form = new FormData()
    form.append('file', file, file.name)
    const shared = await (await api('/api/files', { method: 'POST', body: form })).json() as { name: string, size: number }
    status.textContent = `Shared ${shared.name} (${formatBytes(shared.size)}).`
    await loadFiles()
  } catch (err) {
    status.textContent = `Could not share ${file.name}: ${(err as Error).message}`
  }
}

async function loadFiles (): Promise<void> {
  const list = await (await api('/api/files')).json() as FileView[]
  for (const file of list) {
    files.set(file.fileId, file)
    update(file)
  }
  document.getElementById('empty')!.hidden = files.size > 0
}

/** Reads the event stream; reconnects after a pause if it drops. */
async function followEvents (): Promise<void> {
  for (;;) {
    try {
      const response = await api('/api/events')
      const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
      let buffer = ''
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        buffer += value
        let cut
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut)
          buffer = buffer.slice(cut + 2)
          const data = block.split('\n').find(line => line.startsWith('data: '))
          if (!block.startsWith('event: progress') || data === undefined) continue
          const progress = JSON.parse(data.slice(6)) as FileView
          const known = files.get(progress.fileId)
          files.set(progress.fileId, { ...known, ...progress })
          if (known === undefined) void loadFiles()
          else update(files.get(progress.fileId)!)
        }
      }
      // The stream ended: the daemon is stopping.
      setDaemonStopped(true)
    } catch {
      // A replaced token will not come back: stop asking.
      if (linkInvalid) return
      // Otherwise the daemon went away: `api` said so on the page.
    }
    await new Promise(resolve => setTimeout(resolve, RECONNECT_MS))
  }
}

/** The header: who this is, the network, peers connected now, and members that supplied bad bytes. */
async function refreshHeader (): Promise<void> {
  const status = await (await api('/api/status')).json() as StatusView
  for (const peer of status.peers) if (peer.name !== null) peerNames.set(peer.public_key, peer.name)
  const connected = status.peers.filter(p => p.connected).length
  const liars = status.peers.filter(p => p.bad_windows > 0).map(p => `${p.name ?? p.public_key.slice(0, 12)} supplied ${p.bad_windows} bad window${p.bad_windows === 1 ? '' : 's'}`)
  const who = document.getElementById('who')!
  who.textContent = status.network === null
    ? `${status.name} · in no network yet`
    : `${status.name} · network “${status.network.name}” · ${connected} peer${connected === 1 ? '' : 's'} connected${liars.length === 0 ? '' : ` · ⚠ ${liars.join(', ')}`}`
  who.dataset.connected = String(connected)
  document.getElementById('peers')!.replaceChildren(...status.peers.map(peerItem))
}

/** One member and how it is reached: directly, through whom, or not at all since when. */
function peerItem (peer: PeerView): HTMLLIElement {
  const item = document.createElement('li')
  const name = peer.name ?? `${peer.public_key.slice(0, 12)}…`
  const since = peer.since_ms === null ? '' : ` since ${new Date(peer.since_ms).toLocaleTimeString()}`
  item.dataset.route = peer.route
  item.textContent = peer.route === 'direct'
    ? `${name} · direct`
    : peer.route === 'relayed'
      ? `${name} · relayed through ${peer.via?.name ?? `${peer.via?.public_key.slice(0, 12) ?? '?'}…`}`
      : `${name} · unreachable${since}`
  item.title = `${peer.route}${since}`
  return item
}

async function start (): Promise<void> {
  try {
    await refreshHeader()
  } catch (err) {
    if (!linkInvalid) document.getElementById('who')!.textContent = `Cannot reach the daemon: ${(err as Error).message}. Open the link that "qf open" prints (it carries the token).`
    return
  }
  document.getElementById('files')!.addEventListener('click', event => {
    const target = (event.target as HTMLElement).closest<HTMLElement>('[data-action]')
    const item = target?.closest<HTMLElement>('li[data-file-id]')
    const action = target?.dataset.action
    if (target === null || target === undefined || item === null || item === undefined || action === undefined || action === 'open' || action === 'save') return
    const file = files.get(item.dataset.fileId!)
    if (file !== undefined) act(file, action, item).catch(err => { document.getElementById('share-status')!.textContent = (err as Error).message })
  })
  const picker = document.getElementById('picker') as HTMLInputElement
  picker.addEventListener('change', () => { const file = picker.files?.[0]; if (file !== undefined) void share(file).then(() => { picker.value = '' }) })
  const drop = document.getElementById('drop')!
  drop.addEventListener('dragover', event => { event.preventDefault(); drop.classList.add('over') })
  drop.addEventListener('dragleave', () => drop.classList.remove('over'))
  drop.addEventListener('drop', event => {
    event.preventDefault()
    drop.classList.remove('over')
    const file = event.dataTransfer?.files[0]
    if (file !== undefined) void share(file)
  })
  await loadFiles()
  void followEvents()
  // Live header; while the daemon is away this is also what notices it is back.
  setInterval(() => { if (!linkInvalid) refreshHeader().catch(() => {}) }, HEADER_REFRESH_MS)
}

void start()
