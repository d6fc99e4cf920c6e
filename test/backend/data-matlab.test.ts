// MAT-file (level 5) reader: numeric, char, cell and struct arrays, compressed or not; truncated and v7.3 files refused.
import { describe, expect, it } from 'vitest';
import { type MatValue, parseMat } from '../../gpu-backend/src/data/matlab';
import { matFile } from '../helpers/mat-writer';

const VARS = {
  class_names: { cell: ['AM General Hummer SUV 2000', 'Acura RL Sedan 2012'] },
  annotations: {
    struct: [
      { bbox_x1: 39, bbox_y1: 116, class: 14, fname: '00001.jpg', score: 0.25 },
      { bbox_x1: 36, bbox_y1: 1000, class: 3, fname: '00002.jpg', score: -70000.5 },
    ],
  },
  grid: { numeric: [1, 2, 3, 4, 5, 6], dims: [2, 3], type: 'int32' as const },
};

function plain(v: MatValue): unknown {
  switch (v.kind) {
    case 'numeric':
      return v.data.length === 1 ? v.data[0] : { dims: v.dims, data: [...v.data] };
    case 'char':
      return v.text;
    case 'cell':
      return v.items.map(plain);
    default:
      return v.items.map((item) => Object.fromEntries(Object.entries(item).map(([k, x]) => [k, plain(x)])));
  }
}

describe('MAT-file reader', () => {
  it.each([true, false])('reads struct, cell, char and numeric arrays (compressed: %s)', (compress) => {
    const vars = parseMat(matFile(VARS, compress), 'x.mat');
    expect(Object.keys(vars)).toEqual(['class_names', 'annotations', 'grid']);
    expect(plain(vars.class_names!)).toEqual(VARS.class_names.cell);
    // Numbers stored as uint8/uint16/double all come back as plain numbers.
    expect(plain(vars.annotations!)).toEqual(VARS.annotations.struct);
    expect(vars.annotations).toMatchObject({
      kind: 'struct',
      dims: [1, 2],
      fields: ['bbox_x1', 'bbox_y1', 'class', 'fname', 'score'],
    });
    expect(plain(vars.grid!)).toEqual({ dims: [2, 3], data: [1, 2, 3, 4, 5, 6] });
  });

  it('refuses truncated files, v7.3 (HDF5) files and broken compression, naming the file', () => {
    const good = matFile(VARS, false);
    expect(() => parseMat(good.subarray(0, 100), 'a.mat')).toThrow('a.mat: header: truncated (100 bytes');
    expect(() => parseMat(good.subarray(0, good.length - 20), 'b.mat')).toThrow(
      /b.mat: .*needs \d+ bytes, \d+ left/,
    );
    const hdf = Buffer.alloc(200);
    hdf.write('MATLAB 7.3 MAT-file, Platform: GLNXA64', 0, 'latin1');
    expect(() => parseMat(hdf, 'c.mat')).toThrow(
      'c.mat: header: not a level-5 MAT-file (v7.3/HDF5 files are not supported)',
    );
    const z = matFile(VARS, true);
    z.fill(0x55, 140, 160);
    expect(() => parseMat(z, 'd.mat')).toThrow(/d.mat: corrupt compressed variable/);
  });
});
