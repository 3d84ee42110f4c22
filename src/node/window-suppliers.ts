/**
 * Per window not verified yet, the peers that supplied slices of it: a window that fails
 * charges them, and a peer found lying has its windows dropped before they mix with others'.
 */
export class WindowSuppliers {
  private readonly byWindow = new Map<number, Set<string>>()

  add (w: number, peer: string): void {
    let peers = this.byWindow.get(w)
    if (peers === undefined) this.byWindow.set(w, peers = new Set())
    peers.add(peer)
  }

  /** The peers that supplied window `w` (none: an empty set); they are forgotten. */
  take (w: number): Set<string> {
    const peers = this.byWindow.get(w) ?? new Set<string>()
    this.byWindow.delete(w)
    return peers
  }

  /** The windows `peer` supplied slices of; their suppliers are forgotten. */
  takeFrom (peer: string): number[] {
    const windows: number[] = []
    for (const [w, peers] of this.byWindow) {
      if (!peers.has(peer)) continue
      this.byWindow.delete(w)
      windows.push(w)
    }
    return windows
  }

  clear (): void {
    this.byWindow.clear()
  }
}
