// Lets `import svg from '../style/icon.svg'` give the file's text (the builder's raw loader).
declare module '*.svg' {
  const value: string;
  export default value;
}
