#!/usr/bin/env node
import { readFileSync } from 'node:fs'
import { Command } from 'commander'

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string, description: string }

const program = new Command()
  .name('qf')
  .description(pkg.description)
  .version(pkg.version, '-V, --version')
  .showHelpAfterError()

program.parse(process.argv)
