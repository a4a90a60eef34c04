export * from './event.js';
export * from './eventTypes.js';
