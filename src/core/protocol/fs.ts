/** The file system management group (8): only its error texts (fieldbench sends it no commands). */
import { defineGroup } from './define.ts';

export const FS_GROUP = defineGroup({
  name: 'fs mgmt',
  id: 8,
  commands: {},
  errors: {
    Unknown: { rc: 1, text: 'unknown' }, FileInvalidName: { rc: 2, text: 'file invalid name' }, FileNotFound: { rc: 3, text: 'file not found' },
    FileIsDirectory: { rc: 4, text: 'file is directory' }, FileOpenFailed: { rc: 5, text: 'file open failed' }, FileSeekFailed: { rc: 6, text: 'file seek failed' },
    FileReadFailed: { rc: 7, text: 'file read failed' }, FileTruncateFailed: { rc: 8, text: 'file truncate failed' }, FileDeleteFailed: { rc: 9, text: 'file delete failed' },
    FileWriteFailed: { rc: 10, text: 'file write failed' }, FileOffsetNotValid: { rc: 11, text: 'file offset not valid' },
    FileOffsetLargerThanFile: { rc: 12, text: 'file offset larger than file' }, ChecksumHashNotFound: { rc: 13, text: 'checksum hash not found' },
    MountPointNotFound: { rc: 14, text: 'mount point not found' }, ReadOnlyFilesystem: { rc: 15, text: 'read-only filesystem' }, FileEmpty: { rc: 16, text: 'file empty' },
  },
});
