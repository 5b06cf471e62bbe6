/**
 * Bounds-checked random access to one image file through its file descriptor.
 *
 * Layers can be gigabytes while their metadata is a few megabytes, so nothing is
 * read whole: reads go through pread into a small cache of fixed-size pages
 * (most inodes and dirents of a directory share a page, so this turns tens of
 * thousands of tiny reads into a few dozen syscalls). Every read is checked
 * against the file size first; a read past the end is an ErofsFormatError, never
 * a short buffer or a RangeError.
 */
import * as fs from 'node:fs';
import { ErofsFormatError } from '../errors';

const PAGE_BITS = 16;
const PAGE_SIZE = 1 << PAGE_BITS;
/** Cache budget per open file: 512 pages of 64 KiB = 32 MiB. */
const MAX_CACHED_PAGES = 512;

export class ImageFile {
  readonly path: string;
  readonly size: number;
  private fd: number;
  /** Insertion-ordered map used as an LRU: a hit re-inserts the page. */
  private readonly pages = new Map<number, Buffer>();

  private constructor(path: string, fd: number, size: number) {
    this.path = path;
    this.fd = fd;
    this.size = size;
  }

  static open(path: string): ImageFile {
    const fd = fs.openSync(path, fs.constants.O_RDONLY);
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile() && !st.isBlockDevice()) {
        throw new ErofsFormatError('not-a-file', `${path}: not a regular file or block device`, path);
      }
      return new ImageFile(path, fd, st.size);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  close(): void {
    if (this.fd >= 0) {
      fs.closeSync(this.fd);
      this.fd = -1;
    }
    this.pages.clear();
  }

  /** True when [offset, offset + length) lies inside the file. */
  contains(offset: number, length: number): boolean {
    return Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset + length <= this.size;
  }

  /**
   * `length` bytes at `offset`. The result may be a view into the cache: use it
   * right away or copy it (Buffer.from) before the next read.
   */
  read(offset: number, length: number, what: string): Buffer {
    if (!this.contains(offset, length)) {
      throw new ErofsFormatError(
        'out-of-bounds',
        `${this.path}: ${what} at byte ${offset} (+${length}) lies outside the ${this.size}-byte file`,
        this.path,
      );
    }
    const first = Math.floor(offset / PAGE_SIZE);
    const last = Math.floor((offset + Math.max(length, 1) - 1) / PAGE_SIZE);
    if (first === last) {
      const page = this.page(first);
      const start = offset - first * PAGE_SIZE;
      return page.subarray(start, start + length);
    }
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    for (let p = first; p <= last; p++) {
      const page = this.page(p);
      const start = p === first ? offset - first * PAGE_SIZE : 0;
      const n = Math.min(page.length - start, length - done);
      page.copy(out, done, start, start + n);
      done += n;
    }
    return out;
  }

  private page(index: number): Buffer {
    const hit = this.pages.get(index);
    if (hit) {
      this.pages.delete(index);
      this.pages.set(index, hit);
      return hit;
    }
    if (this.fd < 0) throw new ErofsFormatError('closed', `${this.path}: read after close`, this.path);
    const start = index * PAGE_SIZE;
    const length = Math.min(PAGE_SIZE, this.size - start);
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const n = fs.readSync(this.fd, buf, done, length - done, start + done);
      if (n === 0) {
        throw new ErofsFormatError('file-changed', `${this.path}: file ended at byte ${start + done} while reading (it was ${this.size} bytes when opened)`, this.path);
      }
      done += n;
    }
    if (this.pages.size >= MAX_CACHED_PAGES) {
      const oldest = this.pages.keys().next().value as number;
      this.pages.delete(oldest);
    }
    this.pages.set(index, buf);
    return buf;
  }
}
