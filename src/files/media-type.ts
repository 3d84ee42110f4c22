import path from 'node:path'

const BY_EXTENSION: Record<string, string> = {
  '.txt': 'text/plain', '.md': 'text/markdown', '.html': 'text/html', '.css': 'text/css', '.csv': 'text/csv',
  '.json': 'application/json', '.pdf': 'application/pdf', '.zip': 'application/zip', '.gz': 'application/gzip',
  '.tar': 'application/x-tar', '.js': 'text/javascript',
  '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.gif': 'image/gif', '.webp': 'image/webp', '.svg': 'image/svg+xml',
  '.mp3': 'audio/mpeg', '.ogg': 'audio/ogg', '.wav': 'audio/wav', '.flac': 'audio/flac', '.m4a': 'audio/mp4',
  '.mp4': 'video/mp4', '.webm': 'video/webm', '.mkv': 'video/x-matroska', '.mov': 'video/quicktime'
}

export const DEFAULT_MEDIA_TYPE = 'application/octet-stream'

/** A media type guessed from the file name's extension. */
export function mediaTypeFor (fileName: string): string {
  return BY_EXTENSION[path.extname(fileName).toLowerCase()] ?? DEFAULT_MEDIA_TYPE
}
