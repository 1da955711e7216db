import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { crc32, deflateRawSync, inflateRawSync } from 'node:zlib';

/**
 * A zip archive written and read with nothing but node:zlib: what azd produces for a Function App
 * (Azure/azure-dev ae35809, cli/azd/pkg/rzip/rzip.go: Go's archive/zip, one Deflate entry per
 * file, directories implied by the entries' paths, `/` as the separator) and what the deployment
 * unpacks. The format is PKWARE's APPNOTE: a local header and the data per entry, then the central
 * directory and its end record. No ZIP64: a package of more than 65,535 files or 4 GiB fails here
 * rather than being written wrong.
 */
export interface ZipEntry {
  /** The entry's path inside the archive, `/`-separated. */
  name: string;
  data: Buffer;
  /** Unix permission bits (e.g. 0o644). */
  mode: number;
}

const LOCAL_HEADER = 0x04034b50;
const CENTRAL_HEADER = 0x02014b50;
const END_OF_CENTRAL_DIRECTORY = 0x06054b50;
const DEFLATE = 8;
/** "Version made by": 3 (Unix) in the high byte, so the external attributes carry Unix modes, as Go writes them. */
const MADE_BY_UNIX = (3 << 8) | 20;

/** Writes the entries to `file`; `level` is zlib's compression level (the content is the same at any level). */
export function writeZip(file: string, entries: Iterable<ZipEntry>, level = 1): { entries: number; bytes: number } {
  const fd = openSync(file, 'w');
  const central: Buffer[] = [];
  let offset = 0;
  let count = 0;
  const write = (buffer: Buffer) => {
    writeSync(fd, buffer);
    offset += buffer.length;
  };
  try {
    for (const entry of entries) {
      const name = Buffer.from(entry.name, 'utf8');
      const compressed = deflateRawSync(entry.data, { level });
      const checksum = crc32(entry.data);
      if (entry.data.length > 0xffffffff || offset > 0xffffffff) throw new Error('the archive needs ZIP64, which this writer does not do');
      const local = Buffer.alloc(30);
      local.writeUInt32LE(LOCAL_HEADER, 0);
      local.writeUInt16LE(20, 4); // version needed: 2.0 (deflate)
      local.writeUInt16LE(0x0800, 6); // flags: UTF-8 names
      local.writeUInt16LE(DEFLATE, 8);
      local.writeUInt16LE(0, 10); // DOS time 00:00 (not read back)
      local.writeUInt16LE((1 << 5) | 1, 12); // DOS date 1980-01-01
      local.writeUInt32LE(checksum, 14);
      local.writeUInt32LE(compressed.length, 18);
      local.writeUInt32LE(entry.data.length, 22);
      local.writeUInt16LE(name.length, 26);
      local.writeUInt16LE(0, 28);
      const header = Buffer.alloc(46);
      header.writeUInt32LE(CENTRAL_HEADER, 0);
      header.writeUInt16LE(MADE_BY_UNIX, 4);
      local.copy(header, 6, 4, 30); // version needed … file name length
      header.writeUInt16LE(0, 32); // comment length
      header.writeUInt16LE(0, 34); // disk number
      header.writeUInt16LE(0, 36); // internal attributes
      header.writeUInt32LE(((0o100000 | entry.mode) << 16) >>> 0, 38); // external attributes: a regular file and its mode
      header.writeUInt32LE(offset, 42);
      central.push(header, name);
      write(local);
      write(name);
      write(compressed);
      count += 1;
      if (count > 0xffff) throw new Error('the archive needs ZIP64 (more than 65,535 entries), which this writer does not do');
    }
    const directory = Buffer.concat(central);
    const end = Buffer.alloc(22);
    end.writeUInt32LE(END_OF_CENTRAL_DIRECTORY, 0);
    end.writeUInt16LE(count, 8);
    end.writeUInt16LE(count, 10);
    end.writeUInt32LE(directory.length, 12);
    end.writeUInt32LE(offset, 16);
    write(directory);
    write(end);
    return { entries: count, bytes: offset };
  } finally {
    closeSync(fd);
  }
}

/** Every entry of the archive, from its central directory, each checked against its CRC-32. */
export function readZip(file: string): ZipEntry[] {
  const archive = readFileSync(file);
  const endAt = archive.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (endAt < 0) throw new Error(`${file} is not a zip archive`);
  const count = archive.readUInt16LE(endAt + 10);
  let at = archive.readUInt32LE(endAt + 16);
  const entries: ZipEntry[] = [];
  for (let index = 0; index < count; index += 1) {
    if (archive.readUInt32LE(at) !== CENTRAL_HEADER) throw new Error(`${file}: a broken central directory`);
    const method = archive.readUInt16LE(at + 10);
    const checksum = archive.readUInt32LE(at + 16);
    const compressedSize = archive.readUInt32LE(at + 20);
    const nameLength = archive.readUInt16LE(at + 28);
    const extraLength = archive.readUInt16LE(at + 30);
    const commentLength = archive.readUInt16LE(at + 32);
    const attributes = archive.readUInt32LE(at + 38);
    const localAt = archive.readUInt32LE(at + 42);
    const name = archive.toString('utf8', at + 46, at + 46 + nameLength);
    const dataAt = localAt + 30 + archive.readUInt16LE(localAt + 26) + archive.readUInt16LE(localAt + 28);
    const stored = archive.subarray(dataAt, dataAt + compressedSize);
    const data = method === DEFLATE ? inflateRawSync(stored) : method === 0 ? Buffer.from(stored) : null;
    if (!data) throw new Error(`${file}: ${name} uses compression method ${method}`);
    if (crc32(data) !== checksum) throw new Error(`${file}: ${name} fails its CRC-32`);
    entries.push({ name, data, mode: (attributes >>> 16) & 0o777 });
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** Unpacks the archive into `dir` (which should be empty), refusing a path that leaves it. */
export function extractZip(file: string, dir: string): number {
  const entries = readZip(file);
  for (const entry of entries) {
    const target = path.resolve(dir, entry.name);
    if (!target.startsWith(path.resolve(dir) + path.sep)) throw new Error(`${file}: ${entry.name} leaves the folder`);
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(target, entry.data, { mode: entry.mode || 0o644 });
  }
  return entries.length;
}
