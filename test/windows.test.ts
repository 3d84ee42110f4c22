import { test } from 'node:test'
import assert from 'node:assert/strict'
import { FileLayout, sliceBytes, sliceCount, windowCount, windowStart } from '../src/files/windows.js'

const MiB = 1024 * 1024

test('window count follows the table for the sizes users share', () => {
  const table: Array<[string, number, number, number]> = [
    ['2 KB', 2000, 5, 1],
    ['45,000 B', 45_000, 100, 1],
    ['450,000 B', 450_000, 1000, 16],
    ['5 MiB', 5 * MiB, 11_651, 128],
    ['50 MiB', 50 * MiB, 116_509, 2048],
    ['1 GiB', 1024 * MiB, 2_386_093, 32768]
  ]
  for (const [label, bytes, slices, windows] of table) {
    assert.equal(sliceCount(bytes), slices, `${label} slices`)
    assert.equal(windowCount(slices), windows, `${label} windows`)
  }
  assert.equal(windowCount(0), 1)
  assert.equal(windowCount(101), 2)
  assert.equal(windowCount(100 * 65536 * 4), 65536, 'clamped at 65536')
})

test('windows are contiguous, cover every slice once, and hold at most 100 slices below the clamp', () => {
  for (const n of [1, 99, 100, 101, 1000, 11_651, 116_509]) {
    const W = windowCount(n)
    let next = 0
    for (let w = 0; w < W; w++) {
      const from = windowStart(w, n, W)
      const to = windowStart(w + 1, n, W)
      assert.equal(from, next)
      assert.ok(to - from <= 100, `window ${w} of ${n} holds ${to - from}`)
      next = to
    }
    assert.equal(next, n)
  }
})

test('ranges split windows larger than 512 slices, and rangeOf inverts rangeStart', () => {
  const huge = new FileLayout(100 * 65536 * 8)
  assert.equal(huge.windows, 65536)
  assert.ok(huge.rangeCount > 65536)
  for (let r = 0; r < huge.rangeCount; r += 997) {
    assert.ok(huge.rangeLength(r) <= 512 && huge.rangeLength(r) > 0)
    assert.equal(huge.rangeOf(huge.rangeStart(r)), r)
    assert.equal(huge.rangeOf(huge.rangeStart(r) + huge.rangeLength(r) - 1), r)
  }
  assert.equal(new FileLayout(0).rangeCount, 0)
  assert.equal(new FileLayout(5).rangeCount, 1)
})

test('a request range is a run of whole consecutive windows of at most 512 slices', () => {
  for (const n of [1, 101, 11_651, 116_509, 2_386_093]) {
    const layout = new FileLayout(n)
    const W = layout.windows
    const windowStarts = new Set<number>()
    for (let w = 0; w <= W; w++) windowStarts.add(windowStart(w, n, W))
    let next = 0
    for (let r = 0; r < layout.rangeCount; r++) {
      assert.equal(layout.rangeStart(r), next)
      assert.ok(windowStarts.has(layout.rangeStart(r)), 'ranges start on a window boundary')
      assert.ok(layout.rangeLength(r) > 0 && layout.rangeLength(r) <= 512)
      next += layout.rangeLength(r)
    }
    assert.equal(next, n)
  }
  const fifty = new FileLayout(116_509).rangeCount
  assert.ok(fifty >= Math.ceil(116_509 / 512) && fifty <= 2048 / 8, `50 MiB: 2048 windows in ${fifty} requests`)
  assert.equal(new FileLayout(116_509, 100).rangeCount, 2048, 'one window per request when ranges are capped at 100')
})

test('the last slice holds only the bytes left', () => {
  assert.equal(sliceBytes(0, 1000), 450)
  assert.equal(sliceBytes(2, 1000), 100)
  assert.equal(sliceBytes(3, 1000), 0)
})
