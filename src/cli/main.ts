#!/usr/bin/env node
import fs from 'node:fs'
import path from 'node:path'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { Command, InvalidArgumentError, Option } from 'commander'
import cliProgress from 'cli-progress'
import { defaultDataDir, initIdentity, loadControl, loadOrCreateToken, rotateToken } from '../node/config.js'
import { QuietError } from '../node/errors.js'
import { toHex } from '../bytes.js'
import { CliError, DaemonUnreachable, daemonClient } from './client.js'
import { sleep } from './processes.js'
import { formatRate, parseRate, RATE_SYNTAX } from './rates.js'
import { pageUrl, parseHostPort } from '../daemon/addresses.js'
import { formatBytes, formatEta, formatSpeed, table } from './format.js'
import { MAX_ADDRESSES_PER_PEER } from '../net/transit.js'
import { DEFAULT_RELAY_LIMITS } from '../net/relay.js'
import { isSettled } from '../node/progress.js'
import type { Progress } from '../node/progress.js'
import type { DaemonClient } from './client.js'
import type { PeerAddress } from '../net/transit.js'
import type { LimitsView, PeerReport, RelayReport } from '../http/status.js'

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string, description: string }

interface DirOptions { dir?: string }
interface JsonOptions extends DirOptions { json?: boolean }

function dirOf (options: DirOptions): string {
  return path.resolve(options.dir ?? defaultDataDir())
}

function intInRange (min: number, max: number, what: string) {
  return (value: string): number => {
    const n = Number(value)
    if (!/^\d+$/.test(value) || n < min || n > max) throw new InvalidArgumentError(`${what} must be an integer from ${min} to ${max}`)
    return n
  }
}

/** A rate option's value: bytes per second, or 0 for "off" (commander keeps no null). */
function rateOption (value: string): number {
  try {
    return parseRate(value) ?? 0
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message)
  }
}

function collectHostPorts (value: string, previous: PeerAddress[]): PeerAddress[] {
  if (previous.length >= MAX_ADDRESSES_PER_PEER) throw new InvalidArgumentError(`at most ${MAX_ADDRESSES_PER_PEER} addresses`)
  try {
    return [...previous, parseHostPort(value)]
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message)
  }
}

function clockNote (skewSeconds: number | null): string {
  if (skewSeconds === null) return ''
  return ` (its clock is ${Math.abs(skewSeconds)} s ${skewSeconds > 0 ? 'ahead' : 'behind'}: connects refused)`
}

function print (json: boolean | undefined, value: unknown, text: () => string): void {
  console.log(json === true ? JSON.stringify(value) : text())
}

const FILE_ID = /^[0-9a-fA-F]{32}$/
/** How often `qf get` redraws its progress bar. */
const PROGRESS_REFRESH_MS = 200
/** How long `qf get` waits by default for a daemon that stopped mid-download to run again, and how often it looks. */
const DEFAULT_DAEMON_WAIT_S = 60
const DAEMON_RETRY_MS = 500
function fileIdArgument (value: string): string {
  if (!FILE_ID.test(value)) throw new CliError(`not a file id (32 hex digits): ${value}`)
  return value.toLowerCase()
}

const program = new Command()
  .name('qf')
  .description(pkg.description)
  .version(pkg.version, '-V, --version')

/** Every command takes --dir. */
function command (name: string, description: string): Command {
  return program.command(name).description(description).option('--dir <dir>', 'data directory (default: $QF_DIR, else the user data directory)')
}

command('init', 'create this device\'s identity (running it again changes nothing)')
  .option('--name <name>', 'display name shown to other members', process.env.USER ?? 'member')
  .action((options: DirOptions & { name: string }) => {
    const dir = dirOf(options)
    const { identity, created } = initIdentity(dir, options.name)
    console.log(created ? `created identity ${toHex(identity.publicKey)} (${identity.name}) in ${dir}` : `identity already exists: ${toHex(identity.publicKey)} (${identity.name}) in ${dir}`)
  })

command('daemon', 'run the node in the foreground')
  .addOption(new Option('--port <port>', 'UDP port (0: any free port)').argParser(intInRange(0, 65535, 'port')).default(0))
  .addOption(new Option('--http <port>', 'control API and page port on 127.0.0.1 (default: the one used last time if free, so open pages carry on after a restart; 0: any free port)').argParser(intInRange(0, 65535, 'port')))
  .option('--announce <host:port>', 'an address other members are told to use (repeat for several; default: this machine\'s LAN addresses)', collectHostPorts, [])
  .addOption(new Option('--mtu <bytes>', 'largest datagram to send').argParser(intInRange(600, 65507, 'mtu')).default(1400))
  .option('--quiet', 'say only errors in the log')
  .option('--verbose', 'also say the progress of downloads every second')
  .addOption(new Option('--max-upload <rate>', `cap on what it sends to all peers together: ${RATE_SYNTAX}`).argParser(rateOption))
  .addOption(new Option('--max-download <rate>', `cap on what it fetches from all peers together: ${RATE_SYNTAX}`).argParser(rateOption))
  .option('--no-relay', 'never forward datagrams between members who cannot reach each other directly')
  .addOption(new Option('--relay-max-rate <rate>', `cap on what it forwards for others: ${RATE_SYNTAX}`).argParser(rateOption).default(DEFAULT_RELAY_LIMITS.maxBytesPerS, formatRate(DEFAULT_RELAY_LIMITS.maxBytesPerS)))
  .addOption(new Option('--relay-max-channels <n>', 'pairs of members it relays for at once').argParser(intInRange(1, 1024, 'channels')).default(DEFAULT_RELAY_LIMITS.maxChannels))
  .action(async (options: DirOptions & { port: number, http: number, announce: PeerAddress[], mtu: number, quiet?: boolean, verbose?: boolean, maxUpload?: number, maxDownload?: number, relay: boolean, relayMaxRate: number, relayMaxChannels: number }) => {
    const dir = dirOf(options)
    const running = loadControl(dir)
    if (running !== null && isAlive(running.pid)) throw new CliError(`a daemon is already running for ${dir} (pid ${running.pid})`)
    if (options.quiet === true && options.verbose === true) throw new CliError('--quiet and --verbose cannot go together')
    const voice = options.quiet === true ? 'quiet' : options.verbose === true ? 'verbose' : 'normal'
    const limits = { maxUploadBytesPerS: options.maxUpload || null, maxDownloadBytesPerS: options.maxDownload || null }
    // "off" for the relay's rate: no cap of its own (the relay is still on; --no-relay turns it off).
    const relay = { enabled: options.relay, maxBytesPerS: options.relayMaxRate || Infinity, maxChannels: options.relayMaxChannels }
    // Loaded here only: the daemon's modules (the store, the HTTP server) would slow every other command's start.
    const { Daemon } = await import('../daemon/daemon.js')
    const daemon = await Daemon.start({ dir, udpPort: options.port, httpPort: options.http, announce: options.announce, mtu: options.mtu, voice, limits, relay })
    console.log(`quiet-files daemon for ${dir}`)
    console.log(`  public key  ${toHex(daemon.identity.publicKey)}`)
    console.log(`  udp         ${daemon.udpPort} (announced as ${daemon.announceAddresses.map(a => `${a.host}:${a.port}`).join(', ')})`)
    console.log(`  control     http://127.0.0.1:${daemon.httpPort}`)
    // The token stays out of logs: `qf open` prints the page's address with it.
    console.log(`  page        http://127.0.0.1:${daemon.httpPort}/ (qf open prints the link with its token)`)
    console.log(daemon.network === null ? '  network     none yet: qf network create NAME, or qf join LINK' : `  network     ${daemon.network.name}`)
    const signals = ['SIGINT', 'SIGTERM'] as const
    const signal = await Promise.race(signals.map(async s => { await once(process, s); return s }))
    console.log(`${signal}: shutting down`)
    await daemon.stop()
    process.exit(0)
  })

function isAlive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}

const network = program.command('network').description('show the network, its members and how they are reached; or create one')
// `qf network` alone shows it.
network.command('show', { isDefault: true }).description('show the network, its members and how they are reached')
  .option('--dir <dir>', 'data directory')
  .option('--json', 'print JSON only')
  .action(async (options: JsonOptions) => {
    const status = await daemonClient(dirOf(options)).call<{
      name: string, network: { id: string, name: string } | null,
      peers: PeerReport[]
    }>('GET', '/api/status')
    if (status.network === null) throw new CliError('this node is in no network yet; run "qf network create NAME" or "qf join LINK"')
    print(options.json, { network: status.network, members: status.peers }, () => [
      `network "${status.network!.name}" (${status.network!.id})`,
      `  ${status.name} (this node)`,
      ...status.peers.map(p => `  ${p.name ?? `${p.public_key.slice(0, 16)}…`} ${routeText(p)}${badWindowsNote(p)}`)
    ].join('\n'))
  })
network.command('create <name>').description('create a new network and join it')
  .option('--dir <dir>', 'data directory')
  .option('--json', 'print JSON only')
  .action(async (name: string, options: JsonOptions) => {
    const result = await daemonClient(dirOf(options)).call<{ network_id: string, name: string }>('POST', '/api/network', { name })
    print(options.json, result, () => `created network "${result.name}" (${result.network_id}); invite others with: qf invite`)
  })

command('invite', 'print an invite link for this network')
  .addOption(new Option('--ttl <seconds>', 'how long the link stays valid').argParser(intInRange(1, 365 * 24 * 3600, 'ttl')).default(7 * 24 * 3600))
  .option('--json', 'print JSON only')
  .action(async (options: JsonOptions & { ttl: number }) => {
    const result = await daemonClient(dirOf(options)).call<{ link: string, expires_at: string }>('GET', `/api/invite?ttl=${options.ttl}`)
    print(options.json, result, () => result.link)
  })

command('join <link>', 'join a network with an invite link')
  .option('--json', 'print JSON only')
  .action(async (link: string, options: JsonOptions) => {
    const result = await daemonClient(dirOf(options)).call<{ network_id: string, name: string }>('POST', '/api/join', { link })
    print(options.json, result, () => `joined network "${result.name}" (${result.network_id})`)
  })

command('share <path>', 'share a file into the network; prints its file id')
  .option('--message <text>', 'a short message posted with the file')
  .option('--json', 'print JSON only')
  .action(async (filePath: string, options: JsonOptions & { message?: string }) => {
    const absolute = path.resolve(filePath)
    if (!fs.existsSync(absolute)) throw new CliError(`no such file: ${filePath}`)
    const client = daemonClient(dirOf(options))
    // Each share is a new file id: sharing the same file again is said, not silently doubled.
    const [me, files] = await Promise.all([
      client.call<{ public_key: string }>('GET', '/api/status'),
      client.call<Array<{ fileId: string, name: string, bytesTotal: number, shared_by: string }>>('GET', '/api/files')
    ])
    const size = fs.statSync(absolute).size
    const earlier = files.filter(f => f.shared_by === me.public_key && f.name === path.basename(absolute) && f.bytesTotal === size)
    if (earlier.length > 0) console.error(`qf: ${path.basename(absolute)} (${formatBytes(size)}) was already shared as ${earlier.map(f => f.fileId).join(', ')}; sharing it again as a new file`)
    const result = await client.call<{ file_id: string, name: string, size: number }>('POST', '/api/share', { path: absolute, message: options.message })
    print(options.json, result, () => result.file_id)
  })

command('files', 'list the files known in the network')
  .option('--json', 'print JSON only')
  .action(async (options: JsonOptions) => {
    const files = await daemonClient(dirOf(options)).call<Array<Progress & { shared_by_name: string | null, shared_at: string, messages: Array<{ text: string, author_name: string | null }> }>>('GET', '/api/files')
    print(options.json, files, () => files.length === 0
      ? 'no files yet'
      : table([['FILE ID', 'NAME', 'SIZE', 'STATE', 'PERCENT', 'SHARED BY', 'SHARED AT', 'MESSAGE'],
        ...files.map(f => [f.fileId, f.name, formatBytes(f.bytesTotal), f.state, `${f.percent.toFixed(1)}%`, f.shared_by_name ?? '', f.shared_at.slice(0, 16).replace('T', ' '), f.messages.map(m => m.text).join(' / ')])]))
  })

for (const [verb, method, route, done] of [
  ['pause', 'POST', 'pause', 'paused'],
  ['resume', 'POST', 'resume', 'resumed'],
  ['cancel', 'DELETE', 'download', 'cancelled; partial data deleted']
] as const) {
  command(`${verb} <file_id>`, `${verb} a download`)
    .option('--json', 'print JSON only')
    .action(async (fileId: string, options: JsonOptions) => {
      const id = fileIdArgument(fileId)
      const progress = await daemonClient(dirOf(options)).call<Progress>(method, `/api/files/${id}/${route}`)
      print(options.json, progress, () => `${progress.name}: ${done} (${progress.state}, ${progress.percent.toFixed(1)}%)`)
    })
}

command('open', 'print the address of the web page (with its token)')
  .action((options: DirOptions) => {
    const dir = dirOf(options)
    const control = loadControl(dir)
    if (control === null || !isAlive(control.pid)) throw new CliError(`no daemon is running for ${dir}; start one with: qf daemon --dir ${dir}`)
    console.log(pageUrl(control.httpPort, control.token))
  })

command('token', 'print the control API token; --rotate replaces it (open pages must be reopened)')
  .option('--rotate', 'replace the token with a new random one')
  .option('--json', 'print JSON only')
  .action(async (options: JsonOptions & { rotate?: boolean }) => {
    const dir = dirOf(options)
    const control = loadControl(dir)
    const running = control !== null && isAlive(control.pid)
    let token: string
    if (options.rotate !== true) token = running ? control.token : loadOrCreateToken(dir)
    else if (running) token = (await daemonClient(dir).call<{ token: string }>('POST', '/api/token/rotate')).token
    else token = rotateToken(dir)
    print(options.json, { token, rotated: options.rotate === true }, () => options.rotate === true ? `${token}\nthe old token no longer works; open the page again with the link "qf open" prints` : token)
  })

command('limits', 'show the upload and download caps; --max-upload and --max-download change them until the daemon stops')
  .addOption(new Option('--max-upload <rate>', `cap on what it sends to all peers together: ${RATE_SYNTAX}`).argParser(rateOption))
  .addOption(new Option('--max-download <rate>', `cap on what it fetches from all peers together: ${RATE_SYNTAX}`).argParser(rateOption))
  .option('--json', 'print JSON only')
  .action(async (options: JsonOptions & { maxUpload?: number, maxDownload?: number }) => {
    const client = daemonClient(dirOf(options))
    const change: Partial<LimitsView> = {}
    if (options.maxUpload !== undefined) change.max_upload_bytes_per_s = options.maxUpload || null
    if (options.maxDownload !== undefined) change.max_download_bytes_per_s = options.maxDownload || null
    const limits = Object.keys(change).length > 0
      ? await client.call<LimitsView>('PUT', '/api/limits', change)
      : await client.call<LimitsView>('GET', '/api/limits')
    print(options.json, limits, () => `upload    ${formatRate(limits.max_upload_bytes_per_s)}\ndownload  ${formatRate(limits.max_download_bytes_per_s)}`)
  })

program.command('peer').description('what this node does with a peer')
  .command('trust <public_key>').description('ask a peer again that was left out for supplying bad windows')
  .option('--dir <dir>', 'data directory (default: $QF_DIR, else the user data directory)')
  .option('--json', 'print JSON only')
  .action(async (publicKey: string, options: JsonOptions) => {
    const peer = await daemonClient(dirOf(options)).call<{ name?: string | null }>('POST', `/api/peers/${encodeURIComponent(publicKey.toLowerCase())}/trust`)
    print(options.json, peer, () => `${peer.name ?? publicKey}: trusted again`)
  })

/** Downloads still going first, one line each; the finished ones in one line at the end. */
function downloadLines (downloads: Progress[]): string[] {
  const going = downloads.filter(d => d.state !== 'complete')
  const finished = downloads.filter(d => d.state === 'complete')
  const lines = going.map(d => `  ${d.name} ${stateText(d)} ${d.percent.toFixed(1)}% ${formatSpeed(d.speedBytesPerSecond)} ETA ${formatEta(d.etaSeconds)}`)
  if (finished.length > 0) lines.push(`  finished (${finished.length}): ${finished.map(d => d.name).join(', ')}`)
  return lines.length === 0 ? ['  none'] : lines
}

/** Whether this node relays for others, within what, and how much it did. */
function relayLine (relay: RelayReport): string {
  if (!relay.enabled) return 'relay: off (--no-relay)'
  const cap = `at most ${relay.max_bytes_per_s === null ? 'any rate' : formatRate(relay.max_bytes_per_s)} for ${relay.max_channels} pairs`
  return `relay: on, ${cap}; relaying for ${relay.channels} pair${relay.channels === 1 ? '' : 's'} now, ${formatBytes(relay.relayed_bytes)} passed on, ${relay.dropped} datagrams dropped`
}

const RELAY_REFUSALS: Record<string, string> = { off: 'relaying is off there', unreachable: 'the relay does not reach it', full: 'the relay is full' }

/** How a peer is reached: directly (where), through whom, or not at all, and since when. */
function routeText (p: Pick<PeerReport, 'route' | 'via' | 'since_ms' | 'relay_refused' | 'address'>): string {
  const since = p.since_ms === null ? '' : ` since ${new Date(p.since_ms).toTimeString().slice(0, 8)}`
  if (p.route === 'direct') return `connected directly at ${p.address ?? '?'}${since}`
  if (p.route === 'relayed') return `connected through ${p.via?.name ?? `${p.via?.public_key.slice(0, 16) ?? '?'}…`} (relayed)${since}`
  const notes = [p.address === null ? null : `last tried ${p.address}`, p.relay_refused === null ? null : `no relay: ${RELAY_REFUSALS[p.relay_refused] ?? p.relay_refused}`]
  const said = notes.filter(note => note !== null)
  return `unreachable${since}${said.length === 0 ? '' : ` (${said.join('; ')})`}`
}

/** Beside a peer in qf status: windows it supplied that failed their hash. */
function badWindowsNote (p: { bad_windows: number, trusted: boolean }): string {
  if (p.bad_windows === 0) return ''
  return `  ! supplied ${p.bad_windows} bad window${p.bad_windows === 1 ? '' : 's'}${p.trusted ? '' : '; not asked for anything (qf peer trust KEY to change that)'}`
}

command('status', 'peers, connections and downloads')
  .option('--json', 'print JSON only')
  .action(async (options: JsonOptions) => {
    const status = await daemonClient(dirOf(options)).call<{
      public_key: string, name: string, network: { id: string, name: string } | null, udp_port: number, connections: number,
      peers: PeerReport[], downloads: Progress[], relay: RelayReport | null
    }>('GET', '/api/status')
    print(options.json, status, () => [
      `${status.name} ${status.public_key}`,
      `network: ${status.network === null ? 'none' : `${status.network.name} (${status.network.id})`}, udp ${status.udp_port}, ${status.connections} connection(s)`,
      'peers:', ...(status.peers.length === 0 ? ['  none'] : status.peers.map(p => `  ${p.name ?? '?'} ${p.public_key.slice(0, 16)}… ${routeText(p)}${clockNote(p.clock_skew_seconds)}${badWindowsNote(p)}`)),
      ...(status.relay === null ? [] : [relayLine(status.relay)]),
      'downloads:', ...downloadLines(status.downloads)
    ].join('\n'))
  })

command('get <file_id>', 'download a file with a live progress bar and save it once verified')
  .addOption(new Option('--priority <1-10>', 'download priority').argParser(intInRange(1, 10, 'priority')).default(5))
  .addOption(new Option('--ttl <seconds>', 'give up after this long').argParser(intInRange(1, 10 * 365 * 24 * 3600, 'ttl')))
  .option('--out <path>', 'where to save it: a path, or a directory to save it into under its name (default: the current directory)')
  .option('--force', 'overwrite an existing file')
  .option('--json', 'print progress as JSON lines instead of a bar')
  .addOption(new Option('--daemon-wait <seconds>', 'how long to wait for a daemon that stops meanwhile to run again').argParser(intInRange(0, 24 * 3600, 'daemon-wait')).default(DEFAULT_DAEMON_WAIT_S))
  .action(async (fileId: string, options: JsonOptions & { priority: number, ttl?: number, out?: string, force?: boolean, daemonWait: number }) => {
    const id = fileIdArgument(fileId)
    const dir = dirOf(options)
    const json = options.json === true
    let client = daemonClient(dir)
    const initial = await client.call<Progress>('GET', `/api/files/${id}/status`)
    const safeName = path.basename(initial.name)
    const ownName = safeName === '' || safeName === '.' || safeName === '..' ? id : safeName
    // A directory given as --out gets the file under its own name, as cp and curl -O do.
    const given = options.out === undefined ? ownName : options.out
    const out = path.resolve(isDirectory(given) ? path.join(given, ownName) : given)
    const existedAtStart = fs.existsSync(out)
    if (existedAtStart && options.force !== true) throw new CliError(`${out} already exists; use --force to overwrite it`)
    if (!fs.existsSync(path.dirname(out))) throw new CliError(`no such directory: ${path.dirname(out)}`)
    // The daemon writes the plaintext as slices arrive and moves it into place once verified,
    // and keeps at the download and the save across a restart. After one, both are asked for again
    // all the same (asking again changes nothing); whatever is at `out` by then was put there by that save.
    const ask = async (again: boolean): Promise<void> => {
      await client.call('POST', `/api/files/${id}/download`, { priority: options.priority, ttl: options.ttl })
      await client.call('POST', `/api/files/${id}/save`, { path: out, force: options.force === true || (again && !existedAtStart) })
    }
    // Ctrl-C stops following, not the download: the daemon goes on and saves the file.
    process.once('SIGINT', () => {
      activeBar?.stop()
      const text = `stopped following; the daemon goes on fetching ${initial.name} and saves it to ${out} (qf cancel ${id} stops it)`
      if (json) console.log(JSON.stringify({ event: 'detached', path: out, file_id: id }))
      else console.error(text)
      process.exit(130)
    })
    let asked = false
    let again = false
    let final: Progress | null = null
    while (final === null) {
      try {
        if (!asked) {
          // Someone may have cancelled it while this command waited for the daemon: that stands.
          const now = again ? await client.call<Progress>('GET', `/api/files/${id}/status`) : null
          if (now?.state === 'cancelled') { final = now; break }
          await ask(again)
        }
        asked = true
        final = await followProgress(client, id, json)
      } catch (err) {
        if (!(err instanceof DaemonUnreachable)) throw err
        client = await waitForDaemon(dir, options.daemonWait * 1000, json)
        asked = false
        again = true
      }
    }
    const done = final
    // Cancelled while this command followed it, or while it waited for the daemon.
    if (done.state === 'cancelled') throw new CliError(`${done.name}: the download was cancelled`)
    if (done.state !== 'complete') throw new CliError(`${done.name}: download ${done.state}${done.reason === null ? '' : `: ${done.reason}`}`)
    const saved = done.saves.find(save => save.path === out)
    if (saved?.state !== 'saved') throw new CliError(saved?.error ?? `${done.name}: the file was not saved`)
    print(options.json, { event: 'saved', path: out, bytes: done.bytesTotal, file_id: id }, () => `saved ${out} (${formatBytes(done.bytesTotal)}, verified)`)
  })

/** A download's state for a person: a stalled one says why (and that it is retried). */
function stateText (p: Progress): string {
  if (p.state === 'complete' && !isSettled(p)) return 'saving'
  if (p.state === 'stalled') return `stalled: ${p.reason ?? 'cannot go on'}; retrying`
  if ((p.state === 'queued' || p.state === 'active') && p.reason !== null) return `${p.state}: ${p.reason}`
  return p.state
}

function isDirectory (candidate: string): boolean {
  try { return fs.statSync(candidate).isDirectory() } catch { return false }
}

/** The progress bar being drawn, to be put away if the command is interrupted. */
let activeBar: cliProgress.SingleBar | null = null

async function followProgress (client: DaemonClient, id: string, json: boolean): Promise<Progress> {
  const bar = activeBar = json ? null : new cliProgress.SingleBar({
    format: '{name} |{bar}| {percentage}% | {done} / {size} | {speed} | ETA {eta_text} | {state}',
    hideCursor: true,
    barsize: 30,
    stopOnComplete: false
  }, cliProgress.Presets.shades_classic)
  let progress = await client.call<Progress>('GET', `/api/files/${id}/status`)
  const payload = (p: Progress) => ({ name: p.name, done: formatBytes(p.bytesReceived), size: formatBytes(p.bytesTotal), speed: formatSpeed(p.speedBytesPerSecond), eta_text: formatEta(p.etaSeconds), state: stateText(p) })
  bar?.start(Math.max(1, progress.bytesTotal), progress.bytesReceived, payload(progress))
  try {
    for (;;) {
      if (json) console.log(JSON.stringify({ event: 'progress', ...progress }))
      else bar!.update(progress.bytesReceived, payload(progress))
      if (isSettled(progress)) return progress
      // Answers after PROGRESS_REFRESH_MS, or as soon as the download settles.
      progress = await client.call<Progress>('GET', `/api/files/${id}/status?wait=${PROGRESS_REFRESH_MS}`)
    }
  } finally {
    bar?.stop()
    activeBar = null
  }
}

/** Waits for the daemon of `dir` to answer again (a restart, say), saying so; gives up after `waitMs`. */
async function waitForDaemon (dir: string, waitMs: number, json: boolean): Promise<DaemonClient> {
  const say = (event: Record<string, unknown>, text: string): void => { if (json) console.log(JSON.stringify(event)); else console.error(text) }
  say({ event: 'daemon_unreachable', waiting_seconds: waitMs / 1000 },
    `the daemon for ${dir} stopped; waiting up to ${waitMs / 1000} s for it to run again (Ctrl-C to stop waiting)`)
  const deadline = Date.now() + waitMs
  for (;;) {
    try {
      const client = daemonClient(dir)
      await client.call('GET', '/api/status')
      say({ event: 'daemon_back' }, 'the daemon runs again; carrying on')
      return client
    } catch (err) {
      if (!(err instanceof DaemonUnreachable)) throw err
      if (Date.now() >= deadline) {
        throw new CliError(`the daemon for ${dir} stopped and did not run again within ${waitMs / 1000} s; what it fetched is kept: run this command again once it runs`)
      }
    }
    await sleep(Math.min(DAEMON_RETRY_MS, Math.max(0, deadline - Date.now())))
  }
}

/**
 * `--dir DIR` and `--json` may come anywhere, before the command too (`qf --dir X init`), as
 * git and docker users expect: they are moved behind the command words, where every command
 * takes them. Whatever follows `--` is left alone.
 */
function optionsToTheEnd (argv: string[]): string[] {
  const head = argv.slice(0, 2)
  const rest = argv.slice(2)
  const end = rest.indexOf('--')
  const words = end < 0 ? rest : rest.slice(0, end)
  const moved: string[] = []
  const kept: string[] = []
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!
    if (word === '--dir' && i + 1 < words.length) { moved.push(word, words[++i]!); continue }
    if (word.startsWith('--dir=') || word === '--json') { moved.push(word); continue }
    kept.push(word)
  }
  return [...head, ...kept, ...moved, ...(end < 0 ? [] : rest.slice(end))]
}

async function main (): Promise<void> {
  program.exitOverride()
  try {
    await program.parseAsync(optionsToTheEnd(process.argv))
  } catch (err) {
    const code = (err as { code?: string, exitCode?: number }).code
    if (code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help') process.exit(0)
    if (typeof code === 'string' && code.startsWith('commander.')) process.exit((err as { exitCode?: number }).exitCode ?? 1)
    if (err instanceof CliError) { console.error(`qf: ${err.message}`); process.exit(err.exitCode) }
    if (err instanceof QuietError) { console.error(`qf: ${err.message}`); process.exit(1) }
    const message = err instanceof Error ? err.message : String(err)
    console.error(`qf: ${message}`)
    process.exit(1)
  }
}

await main()
