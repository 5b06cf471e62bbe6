/** Error messages must stay on one line even when they quote hostile file names. */
export function oneLine(message: string): string {
  return message.replace(/\r/g, '\\r').replace(/\n/g, '\\n');
}
