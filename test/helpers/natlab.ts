import { LabProcesses, Netlab } from './netlab.js'
import { addNamespace, deleteNamespace, run } from './lab-namespaces.js'

/**
 * A small internet in network namespaces, as root: a public segment (a bridge) with a public
 * member on it, and members behind middleboxes of three kinds, each an nftables ruleset:
 *
 * - `preserving`: a NAT router whose masquerade keeps the source port it maps (Linux's default);
 * - `random`: a NAT router whose masquerade picks a random port for every new flow (`masquerade
 *   random`: another port towards each peer, a "symmetric" NAT);
 * - `firewall`: no NAT, a public address, but everything inbound that does not answer
 *   something sent first is dropped.
 *
 * Both routers and the firewall let in only what answers traffic sent out (conntrack), so
 * nobody outside can reach the member unless it sent to them first. Everything lives in
 * namespaces the lab made, and `close` deletes them, also after a failure.
 */
export type Middlebox = 'preserving' | 'random' | 'firewall'

export const PUBLIC_HOST = '10.80.0.10'
const PUBLIC_PREFIX = '10.80.0'

/** Drops what does not answer traffic from inside; `inside`: the interface the member is on (forwarding), or none (the member's own input). */
function filterRules (hook: 'forward' | 'input', inside: string | null): string {
  return `
  chain ${hook} {
    type filter hook ${hook} priority filter; policy drop;
    ct state established,related accept
    iifname "lo" accept
    ${inside === null ? '' : `iifname "${inside}" accept`}
  }`
}

export interface NatMember {
  name: string
  /** The namespace the member's daemon runs in. */
  ns: string
  /** Its own address (private behind a NAT). */
  host: string
  middlebox: Middlebox | 'none'
  /** The router's namespace, for NATs. */
  routerNs: string | null
  /** Where it appears on the public segment (its NAT's address, behind one). */
  publicHost: string
}

export class Natlab {
  private readonly tag = `${process.pid % 10000}${Math.floor(Math.random() * 100)}`
  private readonly namespaces: string[] = []
  private readonly inet: string
  private ports = 0
  private routers = 0
  /** For running daemons and commands inside the namespaces (and killing them at the end). */
  readonly procs = new LabProcesses()

  private constructor () {
    this.inet = this.ns('i')
  }

  static available (): string | null {
    const missing = Netlab.available()
    if (missing !== null) return missing
    try { run(['nft', '--version']) } catch { return 'nftables (nft) is not installed' }
    return null
  }

  static create (): Natlab {
    const lab = new Natlab()
    try {
      addNamespace(lab.inet)
      run(['ip', '-n', lab.inet, 'link', 'add', 'br0', 'type', 'bridge'])
      run(['ip', '-n', lab.inet, 'link', 'set', 'br0', 'up'])
      run(['ip', '-n', lab.inet, 'link', 'set', 'lo', 'up'])
    } catch (err) {
      lab.close()
      throw err
    }
    return lab
  }

  private ns (kind: string): string {
    const name = `qfn${kind}${this.tag}`
    return name
  }

  /** A namespace attached to the public segment at `host`, its interface named `dev`. */
  private attach (ns: string, dev: string, host: string): string {
    addNamespace(ns)
    this.namespaces.push(ns)
    this.procs.adopt(ns)
    const port = `p${this.ports++}x${this.tag}`.slice(0, 15)
    run(['ip', 'link', 'add', dev, 'netns', ns, 'type', 'veth', 'peer', 'name', port, 'netns', this.inet])
    run(['ip', '-n', this.inet, 'link', 'set', port, 'master', 'br0'])
    run(['ip', '-n', this.inet, 'link', 'set', port, 'up'])
    run(['ip', '-n', ns, 'addr', 'add', `${host}/24`, 'dev', dev])
    run(['ip', '-n', ns, 'link', 'set', dev, 'up'])
    run(['ip', '-n', ns, 'link', 'set', 'lo', 'up'])
    return port
  }

  /** A member with a public address on the segment, nothing in front of it. */
  addPublic (name: string, host = PUBLIC_HOST): NatMember {
    const ns = this.ns(name.slice(0, 3))
    this.attach(ns, 'eth0', host)
    return { name, ns, host, middlebox: 'none', routerNs: null, publicHost: host }
  }

  /** A member behind a middlebox of the given kind. */
  addBehind (name: string, middlebox: Middlebox): NatMember {
    const index = ++this.routers
    const ns = this.ns(name.slice(0, 3))
    if (middlebox === 'firewall') {
      const host = `${PUBLIC_PREFIX}.${20 + index}`
      this.attach(ns, 'eth0', host)
      this.nft(ns, `table inet qffw {${filterRules('input', null)}\n}`)
      return { name, ns, host, middlebox, routerNs: null, publicHost: host }
    }
    const router = this.ns(`r${index}`)
    const publicHost = `${PUBLIC_PREFIX}.${10 + index}`
    this.attach(router, 'wan', publicHost)
    const lan = `10.${80 + index}.0`
    addNamespace(ns)
    this.namespaces.push(ns)
    this.procs.adopt(ns)
    run(['ip', 'link', 'add', 'lan', 'netns', router, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
    run(['ip', '-n', router, 'addr', 'add', `${lan}.1/24`, 'dev', 'lan'])
    run(['ip', '-n', router, 'link', 'set', 'lan', 'up'])
    run(['ip', '-n', ns, 'addr', 'add', `${lan}.2/24`, 'dev', 'eth0'])
    run(['ip', '-n', ns, 'link', 'set', 'eth0', 'up'])
    run(['ip', '-n', ns, 'link', 'set', 'lo', 'up'])
    run(['ip', '-n', ns, 'route', 'add', 'default', 'via', `${lan}.1`])
    run(['ip', 'netns', 'exec', router, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'])
    this.nft(router, `table ip qfnat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade${middlebox === 'random' ? ' random' : ''}
  }${filterRules('forward', 'lan')}${filterRules('input', 'lan')}
}`)
    return { name, ns, host: `${lan}.2`, middlebox, routerNs: router, publicHost }
  }

  /**
   * Cuts (or mends) the direct path between two members: `member` drops everything to and
   * from the other's public address, as a broken path would. Relaying through a third still works.
   */
  cutBetween (member: NatMember, other: NatMember, cut: boolean): void {
    if (!cut) { run(['ip', 'netns', 'exec', member.ns, 'nft', 'delete', 'table', 'ip', 'qfcut']); return }
    this.nft(member.ns, `table ip qfcut {
  chain output {
    type filter hook output priority filter; policy accept;
    ip daddr ${other.publicHost} drop
  }
  chain input {
    type filter hook input priority filter; policy accept;
    ip saddr ${other.publicHost} drop
  }
}`)
  }

  private nft (ns: string, ruleset: string): void {
    run(['ip', 'netns', 'exec', ns, 'nft', '-f', '-'], ruleset)
  }

  /** Shapes what a member's namespace sends onto the segment (its uplink): rate and queue. */
  shapeUplink (member: NatMember, rateMbit: number, queueBytes: number): void {
    run(['tc', '-n', member.ns, 'qdisc', 'replace', 'dev', 'eth0', 'root', 'tbf', 'rate', `${rateMbit}mbit`, 'burst', '4000', 'limit', String(queueBytes)])
  }

  close (): void {
    this.procs.kill()
    for (const ns of [...this.namespaces, this.inet]) deleteNamespace(ns)
    this.namespaces.length = 0
  }
}
