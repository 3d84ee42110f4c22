import fs from 'node:fs'

/** CPU time (user + system) a process used so far, from /proc. */
export function cpuSecondsOfPid (pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** The highest resident memory a process had so far, in MB, from /proc. */
export function peakRssOfPid (pid: number): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
  return match === null ? 0 : Number(match[1]) / 1024
}
