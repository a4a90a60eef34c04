import { createLogger } from '../../src/logger.js';

/** An info-level logger that writes to memory; `text()` is everything it wrote. */
export function memoryLogger() {
  let text = '';
  return {
    logger: createLogger('info', {
      write(s: string) {
        text += s;
      },
    }),
    text: () => text,
  };
}
