export declare const STAMP_FILE: string;
export declare function computeStamp(root: string): string;
export declare function isStale(root: string): boolean;
export declare function build(root: string): boolean;
